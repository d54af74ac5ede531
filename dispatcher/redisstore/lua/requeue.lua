-- requeue puts a failed delivery back to queued for a retry asked for by
-- an operator: counters and pending move back, and a done broadcast is
-- sending again. It returns the delivery's attempts, or -1 when there is
-- no such delivery, -2 when it has not failed. The failed attempt is kept
-- for the evidence ledger in attempts (see evidence).
-- KEYS: b, d, attempts. ARGV: field.
local b, d, f = KEYS[1], KEYS[2], ARGV[1]
local old = dget(d, f)
if not old then return -1 end
if string.sub(old, 1, 1) ~= CODE.failed then return -2 end
local p = split(old)
redis.call('HSET', KEYS[3], f .. '#' .. ((p and p[2]) or '0'), old)
redis.call('HINCRBY', b, 'pending', -move(b, d, f, CODE.failed, withCode(old, CODE.queued)))
if redis.call('HGET', b, 'state') == 'done' then
  redis.call('HSET', b, 'state', 'sending')
  redis.call('HDEL', b, 'finished')
end
return tonumber(p and p[2]) or 0
