-- opt_in removes an address's opt-out and, with a catch-up time, adds the
-- recipients behind it to the catch-up set in the same write: they may be
-- reachable again. KEYS: optout set, the phone index hash (field: the
-- address, value: ids joined by commas), the older per-number phone set,
-- catchup. ARGV: address, catch-up time (unix ms; '' for none).
redis.call('SREM', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then
  for id in string.gmatch(redis.call('HGET', KEYS[2], ARGV[1]) or '', '[^,]+') do
    redis.call('ZADD', KEYS[4], ARGV[2], id)
  end
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
    redis.call('ZADD', KEYS[4], ARGV[2], id)
  end
end
return 1
