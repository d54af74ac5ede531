-- snapshot_step reads one bounded chunk of an audience from one shard's
-- index sets: one SSCAN of the index set src from a cursor (COUNT chunk),
-- of which the members that are in any of the sets after it (none: every
-- member) match. Every key is in the shard's hash slot; the ids go to the
-- snapshot (in the broadcast's slot) through snapshot_add.
-- KEYS: src, then the sets a member must be in one of.
-- ARGV: cursor, chunk.
-- Returns {next cursor ('0' at the end), members scanned, matching ids,
-- the run_id of the server that ran it ('' where INFO server names none:
-- miniredis)}. A cursor is good only on the server that gave it: after a
-- failover the promoted replica's table is laid out otherwise, and the
-- caller starts the set again from 0 when the run_id changed.
local node = ''
local info = redis.pcall('INFO', 'server')
if type(info) == 'string' then
  node = string.match(info, 'run_id:(%x+)') or ''
end
local r = redis.call('SSCAN', KEYS[1], ARGV[1], 'COUNT', tonumber(ARGV[2]))
local ids = r[2]
if #KEYS == 1 then
  return {r[1], #ids, ids, node}
end
-- unpack stays far below Lua's C stack limit (8000 values). Each set after
-- the first is asked only about the ids none before it had.
local piece = 1000
local keep = {}
local left = ids
for k = 2, #KEYS do
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
return {r[1], #ids, out, node}
