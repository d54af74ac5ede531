-- acquire_lease takes a lease unless another token holds it, and
-- registers it; a sweeper's claim on the lease's lapse is dropped (the
-- lease is held again). With note (ARGV[4]) '1' it notes the master's
-- replication id under lease..':m:'..token, once (NX: a run that takes its
-- lease again keeps the first), for release_lease to compare.
-- KEYS: lease, leases, swept. ARGV: token, ttl ms, member, note.
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[3])
redis.call('HDEL', KEYS[3], ARGV[3])
if ARGV[4] == '1' then
  redis.call('SET', KEYS[1] .. ':m:' .. ARGV[1], masterID(), 'NX', 'PX', 86400000)
end
return 1
