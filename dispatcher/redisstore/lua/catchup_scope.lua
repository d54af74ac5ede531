-- catchup_scope marks for catch-up, due now, the ids (one step of an
-- edited incident's new scope, all in one shard) that its old scope did
-- not hold. An id was in the old scope when it is in one of the old
-- service sets and in one of the old region sets, a side with no sets
-- holding everyone. An entry already due sooner keeps its time (as
-- ZUNIONSTORE ... AGGREGATE MIN did).
-- KEYS: the shard's catch-up zset, the old scope's service sets, then its
-- region sets (all in the shard's hash slot).
-- ARGV: now (ms), the number of service sets, then the ids.
local now, nsvc = tonumber(ARGV[1]), tonumber(ARGV[2])
local ids = {}
for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
-- unpack stays far below Lua's C stack limit (8000 values).
local piece = 1000
-- inAny marks in hit[i] the ids in one of the sets KEYS[first..last];
-- with no set, every id.
local function inAny(first, last)
  local hit = {}
  if last < first then
    for i = 1, #ids do hit[i] = true end
    return hit
  end
  for k = first, last do
    for i = 1, #ids, piece do
      local m = redis.call('SMISMEMBER', KEYS[k], unpack(ids, i, math.min(i + piece - 1, #ids)))
      for x = 1, #m do
        if m[x] == 1 then hit[i + x - 1] = true end
      end
    end
  end
  return hit
end
local svc, reg = inAny(2, 1 + nsvc), inAny(2 + nsvc, #KEYS)
local added = 0
for i = 1, #ids do
  if not (svc[i] and reg[i]) then
    local cur = redis.call('ZSCORE', KEYS[1], ids[i])
    if not cur or tonumber(cur) > now then
      redis.call('ZADD', KEYS[1], now, ids[i])
      added = added + 1
    end
  end
end
return added
