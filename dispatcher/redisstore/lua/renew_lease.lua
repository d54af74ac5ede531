-- renew_lease extends a lease still held. KEYS: lease. ARGV: token, ttl ms.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
