-- snapshot_progress makes chunks [k0, k1) of a broadcast's snapshot final
-- once the run walked the shards before p whole: the snapshot's line is
-- shard-major and its chunk count, when above one, a multiple of the
-- shards (snapshot.go), so a shard's members are in its own chunks, which
-- no later step adds to. It appends where each of them starts in the
-- snapshot's order to the index aud (4 bytes big-endian a chunk, see
-- prelude.lua), so that batches over their ranks may run now (audSlice
-- reads an index of the final chunks as it reads a whole one), and adds
-- their members to the broadcast's audience and pending (a batch that
-- settles them counts down). The broadcast stays planning (finish waits
-- for sending, which mark_sending sets once the snapshot is whole). The
-- run's token must still be the snapshot's; the index must end at k0 (the
-- chunks are made final in order); shards final already (audp at p or
-- more) are not counted again.
-- It also keeps audx, the whole audience as the final shards foretell it
-- (audn × shards / p: a shard holds an even share of the recipients), which
-- the first delivery record's layout is chosen by (dkeys.lua) when it comes
-- before the snapshot is whole.
-- The run tells how many distinct members it added to the chunks (want,
-- -1 when it cannot tell): fewer in them means a failover took the adds
-- a master acknowledged and never passed on (replication is
-- asynchronous), and nothing is made final: the reply SHORT has the run
-- add them again and ask again.
-- KEYS: b, aud. ARGV: token, p, k0, k1, shards, want.
-- Returns {the members final so far (audn), 1 when the broadcast is
-- cancelled (the run stops walking: snapshot_copied ends the snapshot at
-- its final shards) else 0}.
local b, aud = KEYS[1], KEYS[2]
if redis.call('HGET', b, 'snap') ~= ARGV[1] then
  return redis.error_reply('SUPERSEDED another run took over this audience snapshot')
end
local p, k0, k1 = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local total = tonumber(redis.call('HGET', b, 'audn') or '0')
local cancelled = 0
if redis.call('HGET', b, 'state') == 'cancelled' then cancelled = 1 end
if tonumber(redis.call('HGET', b, 'audp') or '0') >= p then return {total, cancelled} end
if redis.call('STRLEN', aud) ~= 4 * k0 then
  return redis.error_reply('ERR snapshot chunks ' .. k0 .. '-' .. k1 .. ' made final after ' .. redis.call('STRLEN', aud) / 4)
end
local from = total
local sizes, have = {}, 0
for k = k0, k1 - 1 do
  sizes[k] = redis.call('ZCARD', aud .. ':' .. k)
  have = have + sizes[k]
end
local want = tonumber(ARGV[6] or '-1')
if want >= 0 and have < want then
  return redis.error_reply('SHORT snapshot chunks ' .. k0 .. '-' .. k1 .. ' hold ' .. have .. ' members, the run added ' .. want)
end
local parts = {}
for k = k0, k1 - 1 do
  if total >= 4294967296 then
    return redis.error_reply('ERR a snapshot of more than 4294967295 members')
  end
  local t = total
  parts[#parts + 1] = string.char(math.floor(t / 16777216) % 256, math.floor(t / 65536) % 256,
    math.floor(t / 256) % 256, t % 256)
  total = total + sizes[k]
end
if #parts > 0 then redis.call('APPEND', aud, table.concat(parts)) end
redis.call('HSET', b, 'audp', p, 'audn', total, 'audience', total,
  'audx', math.ceil(total * tonumber(ARGV[5]) / p))
redis.call('HINCRBY', b, 'pending', total - from)
return {total, cancelled}
