-- snapshot_copied ends an audience snapshot the store built into aud in
-- bounded steps (a broadcast's, snapshot_begin and snapshot_step, or a
-- compensation notice's copy): it records its size once. With a token,
-- the snapshot must still be the one that run began, and the token is
-- removed. KEYS: b, aud. ARGV: token (optional).
local b = KEYS[1]
if redis.call('HGET', b, 'planned') then
  return tonumber(redis.call('HGET', b, 'audience'))
end
if ARGV[1] and ARGV[1] ~= '' then
  if redis.call('HGET', b, 'snap') ~= ARGV[1] then
    return redis.error_reply('SUPERSEDED another run took over this audience snapshot')
  end
  redis.call('HDEL', b, 'snap')
end
local n = redis.call('ZCARD', KEYS[2])
redis.call('HSET', b, 'planned', '1', 'audience', n, 'pending', n)
return n
