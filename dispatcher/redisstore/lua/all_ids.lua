-- all_ids stores every recipient id of a shard (its record buckets'
-- fields, layout.go) in the set KEYS[1] (in the shard's slot, as every
-- bucket key built from the prefix is).
-- ARGV: the shard's prefix ("tocsin:{r:<n>}:"), buckets.
redis.call('DEL', KEYS[1])
for b = 0, tonumber(ARGV[2]) - 1 do
  local ids = redis.call('HKEYS', ARGV[1] .. 'rb:' .. string.format('%d', b))
  for i = 1, #ids, 1000 do
    redis.call('SADD', KEYS[1], unpack(ids, i, math.min(i + 999, #ids)))
  end
end
return redis.call('SCARD', KEYS[1])
