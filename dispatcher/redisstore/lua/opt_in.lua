-- opt_in removes an address's opt-out and, with a catch-up time, adds the
-- recipients behind it to the catch-up set in the same write: they may be
-- reachable again. KEYS: optout set, recipients of the address (the phone
-- index), catchup. ARGV: address, catch-up time (unix ms; '' for none).
redis.call('SREM', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    redis.call('ZADD', KEYS[3], ARGV[2], id)
  end
end
return 1
