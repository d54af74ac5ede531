-- cancel cancels a broadcast that is not done, and returns its state
-- after the call ('' when there is none). KEYS: b.
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return '' end
if st == 'planning' or st == 'sending' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled')
  return 'cancelled'
end
return st
