-- audience.lua defines audience(): it stores into aud the intersection of
-- the union of the service sets with the union of the region sets, as a
-- zset with all scores 0 (so it is ordered by id and sliceable by rank),
-- and returns its size. KEYS from index first: the nsvc service sets, then
-- the nreg region sets (an empty side means every recipient: the all set).
-- ts and tr are temporary keys for the two unions, deleted before it
-- returns.
local function audience(aud, ts, tr, all, first, nsvc, nreg)
  local svc, reg = all, all
  if nsvc > 0 then
    redis.call('SUNIONSTORE', ts, unpack(KEYS, first, first + nsvc - 1))
    svc = ts
  end
  if nreg > 0 then
    redis.call('SUNIONSTORE', tr, unpack(KEYS, first + nsvc, first + nsvc + nreg - 1))
    reg = tr
  end
  local n
  if svc == reg then
    n = redis.call('ZUNIONSTORE', aud, 1, svc, 'WEIGHTS', 0)
  else
    n = redis.call('ZINTERSTORE', aud, 2, svc, reg, 'WEIGHTS', 0, 0)
  end
  redis.call('DEL', ts, tr)
  return n
end
