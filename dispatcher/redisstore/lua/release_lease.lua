-- release_lease gives a lease up if still held. A clean release (nothing
-- of the run is left in sending) also unregisters it and drops its handed
-- set; after a failed run both stay, so the sweeper takes the work over
-- and a later update settles what it left, as after a crash. Once the
-- broadcast is done, the first release after claims its snapshot's chunks
-- (audgc) and returns how many there may be: the caller drops them, in
-- steps (snapshot.go); else it returns 0.
-- KEYS: lease, leases, h, b. ARGV: token, member, clean.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('DEL', KEYS[3])
end
local b = KEYS[4]
if redis.call('HGET', b, 'state') == 'done' then
  local c = tonumber(redis.call('HGET', b, 'audc') or '0')
  if c > 0 and redis.call('HSETNX', b, 'audgc', '1') == 1 then return c end
end
return 0
