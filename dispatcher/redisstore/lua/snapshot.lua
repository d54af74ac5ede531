-- snapshot stores a broadcast's audience once (see audience.lua).
-- KEYS: b, aud, tmpSvc, tmpReg, all, then the index sets. ARGV: nsvc, nreg.
local b = KEYS[1]
if redis.call('HGET', b, 'planned') then
  return tonumber(redis.call('HGET', b, 'audience'))
end
local n = audience(KEYS[2], KEYS[3], KEYS[4], KEYS[5], 6, tonumber(ARGV[1]), tonumber(ARGV[2]))
redis.call('HSET', b, 'planned', '1', 'audience', n, 'pending', n)
return n
