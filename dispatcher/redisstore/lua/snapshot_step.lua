-- snapshot_step adds one bounded chunk of an audience to its snapshot:
-- one SSCAN of the index set src from a cursor (COUNT chunk), of which the
-- members that are in any of the sets after it (none: every member) are
-- added to the zset aud with score 0 (ordered by id, sliceable by rank;
-- adding a member twice adds it once). With a token, the snapshot must
-- still be the one that run began (snapshot_begin); with a ttl, aud
-- expires after ttl seconds (a preview's, should it never be deleted).
-- KEYS: b, aud, src, then the sets a member must be in one of.
-- ARGV: token ('' for none), cursor, chunk, ttl (0 for none).
-- Returns {next cursor ('0' at the end), members scanned}.
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'snap') ~= ARGV[1] then
  return redis.error_reply('SUPERSEDED another run took over this audience snapshot')
end
local aud = KEYS[2]
local r = redis.call('SSCAN', KEYS[3], ARGV[2], 'COUNT', tonumber(ARGV[3]))
local ids = r[2]
-- unpack stays far below Lua's C stack limit (8000 values).
local piece = 1000
local keep = {}
if #KEYS == 3 then
  for i = 1, #ids do keep[i] = true end
else
  for k = 4, #KEYS do
    for i = 1, #ids, piece do
      local m = redis.call('SMISMEMBER', KEYS[k], unpack(ids, i, math.min(i + piece - 1, #ids)))
      for x = 1, #m do
        if m[x] == 1 then keep[i + x - 1] = true end
      end
    end
  end
end
local args = {}
for i = 1, #ids do
  if keep[i] then
    args[#args + 1] = 0
    args[#args + 1] = ids[i]
    if #args >= 2 * piece then
      redis.call('ZADD', aud, unpack(args))
      args = {}
    end
  end
end
if #args > 0 then
  redis.call('ZADD', aud, unpack(args))
end
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('EXPIRE', aud, ttl)
end
return {r[1], #ids}
