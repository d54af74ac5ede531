-- mark_sending ends planning. KEYS: b, aud. ARGV: now.
local b, aud, now = KEYS[1], KEYS[2], ARGV[1]
if redis.call('HGET', b, 'state') == 'planning' then
  redis.call('HSET', b, 'state', 'sending', 'started', now)
  finish(b, aud, now)
end
return redis.call('HGET', b, 'state')
