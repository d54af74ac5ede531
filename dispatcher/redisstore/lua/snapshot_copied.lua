-- snapshot_copied ends an audience snapshot the store copied into aud in
-- chunks itself (a compensation notice's): it records its size once, as
-- snapshot.lua does. KEYS: b, aud.
local b = KEYS[1]
if redis.call('HGET', b, 'planned') then
  return tonumber(redis.call('HGET', b, 'audience'))
end
local n = redis.call('ZCARD', KEYS[2])
redis.call('HSET', b, 'planned', '1', 'audience', n, 'pending', n)
return n
