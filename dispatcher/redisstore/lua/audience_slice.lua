-- audience_slice returns the members of a broadcast's snapshot at ranks
-- [start, stop) (audSlice). KEYS: aud. ARGV: start, stop.
return audSlice(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
