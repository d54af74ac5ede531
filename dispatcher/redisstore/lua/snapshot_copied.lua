-- snapshot_copied ends an audience snapshot the store built in bounded
-- steps, once: a broadcast's (snapshot_begin, snapshot_step and
-- snapshot_progress, called with the run's token, 'p' and the shard count)
-- or a compensation notice's copy (no arguments). With a token, the
-- snapshot must still be the one that run began, and the token is removed.
-- A broadcast's snapshot, made final shard by shard, has its index,
-- audience and pending set already: every shard must be final, unless the
-- broadcast was cancelled (its audience is then the members final when the
-- run stopped walking, the rest never selected), and only planned is set.
-- A copy is the one zset aud, counted here.
-- KEYS: b, aud. ARGV: token, 'p', shards; or none.
local b = KEYS[1]
if redis.call('HGET', b, 'planned') then
  return tonumber(redis.call('HGET', b, 'audience'))
end
if ARGV[1] then
  if redis.call('HGET', b, 'snap') ~= ARGV[1] then
    return redis.error_reply('SUPERSEDED another run took over this audience snapshot')
  end
  local done = redis.call('HGET', b, 'audp') or '0'
  if tonumber(done) ~= tonumber(ARGV[3]) and redis.call('HGET', b, 'state') ~= 'cancelled' then
    return redis.error_reply('ERR snapshot ended with ' .. done .. ' of ' .. ARGV[3] .. ' shards final')
  end
  redis.call('HDEL', b, 'snap')
  redis.call('HSET', b, 'planned', '1')
  return tonumber(redis.call('HGET', b, 'audn') or '0')
end
local n = redis.call('ZCARD', KEYS[2])
redis.call('HSET', b, 'planned', '1', 'audience', n, 'pending', n)
return n
