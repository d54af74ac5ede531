-- late_handover hands the late members a group (owner "cg:{hash}", or the
-- one-member form "c:{rid}") claimed and never began over to new groups,
-- when the group's task was given up (its retries exhausted): each member
-- still owner's in the claims and with no delivery record in the broadcast
-- on any channel moves to the group it is listed in, whose ids (g: all it
-- lists, as its name is made of them) and
-- members' set (m) are written and whose lease is registered with no lease
-- key, so the sweeper finds it lapsed and runs it (LapsedBatches). A member
-- with a record stays owner's: what it began is its record's story. Nothing
-- moves while a run holds owner's lease (-1).
-- KEYS: d, claims, owner's lease, owner's m, leases, then per group its m
-- and its g. ARGV: owner, ttl, id (the broadcast), the number of
-- channels, the channels, then per group: its name, its count, its ids. Returns how many members moved.
local d, lc, lease, om, leases = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local owner, ttl, id = ARGV[1], tonumber(ARGV[2]), ARGV[3]
if redis.call('EXISTS', lease) == 1 then return -1 end
local nch = tonumber(ARGV[4])
local chans = {}
for i = 1, nch do chans[i] = ARGV[4 + i] end
local moved, k, i = 0, 6, 5 + nch
while i <= #ARGV do
  local name, n = ARGV[i], tonumber(ARGV[i + 1])
  local gm, gg = KEYS[k], KEYS[k + 1]
  local ids, moves = {}, 0
  for j = i + 2, i + 1 + n do
    local rid = ARGV[j]
    local free = redis.call('HGET', lc, rid) == owner
    for _, ch in ipairs(chans) do
      if free and dget(d, ch .. '.' .. rid) then free = false end
    end
    if free then
      redis.call('HSET', lc, rid, name)
      redis.call('SREM', om, rid)
      redis.call('SADD', gm, rid)
      moves = moves + 1
    end
    ids[#ids + 1] = rid
  end
  if moves > 0 then
    -- Its ids are all it was given (its name is theirs): those it does not
    -- hold, its run leaves alone.
    redis.call('SET', gg, table.concat(ids, ' '), 'EX', ttl)
    redis.call('EXPIRE', gm, ttl)
    redis.call('ZADD', leases, 0, id .. '|' .. name)
    moved = moved + moves
  end
  i, k = i + 2 + n, k + 2
end
if moved > 0 then redis.call('EXPIRE', lc, ttl) end
return moved
