-- lapsed_taken unregisters a lapsed lease the sweeper acted on, if its
-- claim is still the one the sweeper got: a run that took the lease since
-- dropped the claim (acquire_lease.lua) and keeps its registration.
-- KEYS: leases, swept. ARGV: member, claim value.
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
