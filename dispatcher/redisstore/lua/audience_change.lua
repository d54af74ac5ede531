-- audience_change counts what changing an incident's audience does (see
-- audience.lua): the recipients of the old and of the new audience, and
-- those only the new one has (added) and only the old one has (removed).
-- Every set it builds is temporary and deleted before it returns; no id
-- leaves Redis.
-- KEYS: old, new, both, tmpSvc, tmpReg, all, then the old audience's index
-- sets, then the new one's. ARGV: the old nsvc, nreg, the new nsvc, nreg.
local os, orr, ns, nr = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local before = audience(KEYS[1], KEYS[4], KEYS[5], KEYS[6], 7, os, orr)
local after = audience(KEYS[2], KEYS[4], KEYS[5], KEYS[6], 7 + os + orr, ns, nr)
local both = redis.call('ZINTERSTORE', KEYS[3], 2, KEYS[1], KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return {before, after, after - both, before - both}
