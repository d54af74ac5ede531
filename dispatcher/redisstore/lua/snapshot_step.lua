-- snapshot_step reads one bounded chunk of an audience from one shard's
-- index sets: one SSCAN of the index set src from a cursor (COUNT chunk),
-- of which the members that are in any of the sets after it (none: every
-- member) match (cover.lua's within). With the shard's prefix, those sets
-- are first asked whether one holds every recipient of the shard now
-- (cover.lua's covers: audienceSides saw one do so when it sized the
-- audience), and then every member matches. Every key is in the shard's
-- hash slot; the ids go to the snapshot (in the broadcast's slot) through
-- snapshot_add.
-- KEYS: src, then the sets a member must be in one of.
-- ARGV: cursor, chunk, the shard's prefix ('' for no covering test), its
-- record buckets.
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
if #KEYS == 1 or #ids == 0 or (ARGV[3] ~= '' and covers(ARGV[3], tonumber(ARGV[4]), 2, #KEYS)) then
  return {r[1], #ids, ids, node}
end
return {r[1], #ids, within(ids, 2, #KEYS), node}
