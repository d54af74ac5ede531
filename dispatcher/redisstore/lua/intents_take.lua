-- intents_take claims up to n intents due by now (score <= now): each is
-- pushed ahead to now + claim, so no other sweeper takes it meanwhile,
-- and returned with its payload.
-- KEYS: intents (zset id -> due ms), intent (hash id -> payload).
-- ARGV: now ms, claim ms, n.
local now = tonumber(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id)
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
end
return out
