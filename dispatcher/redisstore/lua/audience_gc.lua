-- audience_gc claims the drop of a broadcast's snapshot (audClaim in
-- audgc.lua, which snapshot.go prepends). KEYS: b, aud, the plan's lease.
-- ARGV: now (ms), claim (ms).
return audClaim(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), KEYS[3])
