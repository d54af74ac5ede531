-- materialize creates a broadcast's hash from its pending record (the
-- fields the control plane's MULTI stored, see incidents.go) unless it
-- exists, and moves the incident's latest seq up to the broadcast's (never
-- down), in the broadcast's slot. Running it twice changes nothing.
-- KEYS: b, then incseq for an update's broadcast. ARGV: seq, then the
-- field/value pairs of the hash.
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2))
end
if KEYS[2] then
  local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
  if cur < tonumber(ARGV[1]) then redis.call('SET', KEYS[2], ARGV[1]) end
end
return 1
