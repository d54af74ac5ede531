-- release_lease gives a lease up if still held. A clean release (nothing
-- of the run is left in sending) also unregisters it and drops its handed
-- set; after a failed run both stay, so the sweeper takes the work over
-- and a later update settles what it left, as after a crash.
-- KEYS: lease, leases, h. ARGV: token, member, clean.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('DEL', KEYS[3])
end
return 1
