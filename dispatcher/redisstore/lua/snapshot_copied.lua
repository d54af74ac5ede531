-- snapshot_copied ends an audience snapshot the store built in bounded
-- steps (a broadcast's, snapshot_begin and snapshot_step, or a
-- compensation notice's copy): it records its size once. With a token,
-- the snapshot must still be the one that run began, and the token is
-- removed. A chunked snapshot (a broadcast's) comes with its size and its
-- index, stored as the string aud: where each chunk starts in the
-- snapshot's order (4 bytes big-endian per chunk, see prelude.lua); a
-- snapshot without it is the one zset aud, counted here.
-- KEYS: b, aud. ARGV: token (optional), size and index (optional).
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
local n
if ARGV[3] then
  redis.call('SET', KEYS[2], ARGV[3])
  n = tonumber(ARGV[2])
else
  n = redis.call('ZCARD', KEYS[2])
end
redis.call('HSET', b, 'planned', '1', 'audience', n, 'pending', n)
return n
