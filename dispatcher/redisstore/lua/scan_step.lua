-- scan_step runs one step of a cursor scan (HSCAN, ZSCAN or SSCAN) of
-- KEYS[1] and names the server that ran it, as snapshot_step does: a
-- cursor is good only on the server that gave it (after a failover the
-- promoted replica's table is laid out by another hash seed, and the old
-- cursor skips members without an error), so the caller compares the
-- run_id with the one of the scan's earlier steps and starts again from 0
-- when it changed.
-- KEYS: the key. ARGV: command, cursor, count, match ('' for every
-- member).
-- Returns {next cursor, the step's reply (fields and values, members and
-- scores, or members), run_id ('' where INFO server names none:
-- miniredis)}.
local node = ''
local info = redis.pcall('INFO', 'server')
if type(info) == 'string' then
  node = string.match(info, 'run_id:(%x+)') or ''
end
local r
if ARGV[4] ~= '' then
  r = redis.call(ARGV[1], KEYS[1], ARGV[2], 'MATCH', ARGV[4], 'COUNT', tonumber(ARGV[3]))
else
  r = redis.call(ARGV[1], KEYS[1], ARGV[2], 'COUNT', tonumber(ARGV[3]))
end
return {r[1], r[2], node}
