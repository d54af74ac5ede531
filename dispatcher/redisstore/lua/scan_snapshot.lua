-- scan_snapshot stores an audience for a preview (see audience.lua),
-- expiring after ARGV[3] seconds should the caller never delete it.
-- KEYS: aud, tmpSvc, tmpReg, all, then the index sets. ARGV: nsvc, nreg, ttl.
local n = audience(KEYS[1], KEYS[2], KEYS[3], KEYS[4], 5, tonumber(ARGV[1]), tonumber(ARGV[2]))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return n
