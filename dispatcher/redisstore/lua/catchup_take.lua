-- catchup_take takes at most n recipients of the catch-up set due at now:
-- each is scored until (now + hold) so that no other caller takes it
-- meanwhile, and is due again then should its taker die.
-- KEYS: catchup. ARGV: now (ms), until (ms), n. Returns the ids.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], id)
end
return ids
