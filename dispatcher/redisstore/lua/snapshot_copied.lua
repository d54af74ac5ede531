-- snapshot_copied ends an audience snapshot the store built in bounded
-- steps (a broadcast's, snapshot_begin and snapshot_step, or a
-- compensation notice's copy): it records its size once. With a token,
-- the snapshot must still be the one that run began, and the token is
-- removed. A chunked snapshot (a broadcast's) comes with its size and its
-- index, stored as the string aud: where each chunk starts in the
-- snapshot's order (4 bytes big-endian per chunk, see prelude.lua); a
-- snapshot without it is the one zset aud, counted here.
-- A broadcast's snapshot made final shard by shard (snapshot_progress)
-- ends with size 'p' and the shard count instead: only planned is set.
-- KEYS: b, aud. ARGV: token (optional), size and index (optional), or
-- 'p' and the shard count.
local b = KEYS[1]
if redis.call('HGET', b, 'planned') then
  return tonumber(redis.call('HGET', b, 'audience'))
end
if ARGV[1] and ARGV[1] ~= '' then
  if redis.call('HGET', b, 'snap') ~= ARGV[1] then
    return redis.error_reply('SUPERSEDED another run took over this audience snapshot')
  end
end
if ARGV[2] == 'p' then
  -- A broadcast's snapshot made final shard by shard (snapshot_progress):
  -- the index, audience and pending are set; every shard must be final,
  -- unless the broadcast was cancelled (its audience is then the members
  -- final when the run stopped walking, the rest never selected).
  if tonumber(redis.call('HGET', b, 'audp') or '0') ~= tonumber(ARGV[3])
    and redis.call('HGET', b, 'state') ~= 'cancelled' then
    return redis.error_reply('ERR snapshot ended with ' .. (redis.call('HGET', b, 'audp') or '0') .. ' of ' .. ARGV[3] .. ' shards final')
  end
  redis.call('HDEL', b, 'snap')
  redis.call('HSET', b, 'planned', '1')
  return tonumber(redis.call('HGET', b, 'audn') or '0')
end
if ARGV[1] and ARGV[1] ~= '' then
  redis.call('HDEL', b, 'snap')
end
local n
if ARGV[3] then
  redis.call('SET', KEYS[2], ARGV[3])
  n = tonumber(ARGV[2])
else
  n = redis.call('ZCARD', KEYS[2])
end
redis.call('HSET', b, 'planned', '1', 'audience', n, 'pending', n)
return n
