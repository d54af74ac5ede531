-- cover.lua (snapshot_step, snapshot_buckets): whether a side of an
-- audience holds every recipient of a shard at this instant, so that the
-- ids a step read need no test against it; and the test when it does not.
-- A side covers when one of its index sets has as many members as the
-- shard has records (the HLENs of its record buckets): an index set holds
-- recipients of its shard only, so it then holds them all. Unless the
-- shard's stale-ix is set: a record that did not decode was deleted there
-- and left its index entries behind (delete_recipient.lua), which such a
-- count would take for recipients.
local everyoneN = nil

-- everyone is how many records the shard of prefix has in its nb buckets
-- (counted once a call).
local function everyone(prefix, nb)
  if everyoneN == nil then
    local n = 0
    for b = 0, nb - 1 do
      n = n + redis.call('HLEN', prefix .. 'rb:' .. string.format('%d', b))
    end
    everyoneN = n
  end
  return everyoneN
end

-- covers reports whether one of sets (KEYS[from..to]) holds every
-- recipient of the shard of prefix.
local function covers(prefix, nb, from, to)
  if from > to or redis.call('EXISTS', prefix .. 'stale-ix') == 1 then return false end
  local n = everyone(prefix, nb)
  if n == 0 then return false end
  for k = from, to do
    if redis.call('SCARD', KEYS[k]) == n then return true end
  end
  return false
end

-- within returns those of ids that are in one of the sets KEYS[from..to],
-- in order; each set is asked only about the ids the sets before it
-- lacked. unpack stays far below Lua's C stack limit (8000 values).
local function within(ids, from, to)
  local piece = 1000
  local keep = {}
  local left = ids
  for k = from, to do
    local rest = {}
    for i = 1, #left, piece do
      local m = redis.call('SMISMEMBER', KEYS[k], unpack(left, i, math.min(i + piece - 1, #left)))
      for x = 1, #m do
        if m[x] == 1 then keep[left[i + x - 1]] = true else rest[#rest + 1] = left[i + x - 1] end
      end
    end
    left = rest
    if #left == 0 then break end
  end
  local out = {}
  for i = 1, #ids do
    if keep[ids[i]] then out[#out + 1] = ids[i] end
  end
  return out
end
