-- snapshot_add adds ids a snapshot_step matched to the snapshot zset aud
-- with score 0 (ordered by id, sliceable by rank; adding a member twice
-- adds it once). With a token, the snapshot must still be the one that run
-- began (snapshot_begin); with a ttl, aud expires after ttl seconds (a
-- preview's, should it never be deleted).
-- KEYS: b, aud. ARGV: token ('' for none), ttl (0 for none), ids.
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'snap') ~= ARGV[1] then
  return redis.error_reply('SUPERSEDED another run took over this audience snapshot')
end
-- unpack stays far below Lua's C stack limit (8000 values).
local piece = 1000
local args = {}
for i = 3, #ARGV do
  args[#args + 1] = 0
  args[#args + 1] = ARGV[i]
  if #args >= 2 * piece then
    redis.call('ZADD', KEYS[2], unpack(args))
    args = {}
  end
end
if #args > 0 then
  redis.call('ZADD', KEYS[2], unpack(args))
end
local ttl = tonumber(ARGV[2])
if ttl > 0 and #ARGV > 2 then
  redis.call('EXPIRE', KEYS[2], ttl)
end
return #ARGV - 2
