-- acquire_lease takes a lease unless another token holds it, and
-- registers it; a sweeper's claim on the lease's lapse is dropped (the
-- lease is held again). KEYS: lease, leases, swept. ARGV: token, ttl ms,
-- member.
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[3])
redis.call('HDEL', KEYS[3], ARGV[3])
return 1
