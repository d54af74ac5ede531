-- audience_common counts, for one slice of the snapshot a by rank, how
-- many of its members the snapshot b holds too (an audience change's
-- recipients in both audiences, counted in steps; no id leaves Redis).
-- KEYS: a, b. ARGV: start, chunk. Returns {members in the slice, of them
-- in b}.
local ids = redis.call('ZRANGE', KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[1]) + tonumber(ARGV[2]) - 1)
local both = 0
for i = 1, #ids, 1000 do
  local s = redis.call('ZMSCORE', KEYS[2], unpack(ids, i, math.min(i + 999, #ids)))
  for x = 1, #s do
    if s[x] then both = both + 1 end
  end
end
return {#ids, both}
