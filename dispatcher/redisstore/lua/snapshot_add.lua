-- snapshot_add adds ids a snapshot_step matched to a snapshot with score 0
-- (each chunk ordered by id, sliceable by rank; adding a member twice adds
-- it once). A broadcast's snapshot is chunked: the caller sends each id to
-- its chunk, the zset aud:{k} with k = audChunk(audHash(id), chunks) (snapshot.go), as
-- groups of a chunk number, a count and that many ids. A preview's is the
-- one zset aud. With a token, the snapshot must still be the one that run
-- began (snapshot_begin); with a ttl, aud expires after ttl seconds (a
-- preview's, should it never be deleted).
-- KEYS: b, aud. ARGV: token ('' for none), ttl (0 for none), chunked ('1'
-- or '0'), then the groups or the ids. Returns the ids sent.
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'snap') ~= ARGV[1] then
  return redis.error_reply('SUPERSEDED another run took over this audience snapshot')
end
-- unpack stays far below Lua's C stack limit (8000 values). The score is
-- the string '0': a Lua number would be formatted (sprintf) for every
-- member. The caller sends a chunk's ids in descending order, so that each
-- goes in at the head of the chunk's listpack: ZADD still walks a zset
-- listpack once to see whether the member is there, but no longer a second
-- time for where it goes.
local piece = 1000
local function add(key, from, to)
  local args, n = {}, 0
  for i = from, to do
    args[n + 1] = '0'
    args[n + 2] = ARGV[i]
    n = n + 2
    if n >= 2 * piece then
      redis.call('ZADD', key, unpack(args, 1, n))
      n = 0
    end
  end
  if n > 0 then
    redis.call('ZADD', key, unpack(args, 1, n))
  end
end
if ARGV[3] == '1' then
  local i, n = 4, 0
  while i <= #ARGV do
    local c = tonumber(ARGV[i + 1])
    add(KEYS[2] .. ':' .. ARGV[i], i + 2, i + 1 + c)
    i, n = i + 2 + c, n + c
  end
  return n
end
add(KEYS[2], 4, #ARGV)
local ttl = tonumber(ARGV[2])
if ttl > 0 and #ARGV > 3 then
  redis.call('EXPIRE', KEYS[2], ttl)
end
return #ARGV - 3
