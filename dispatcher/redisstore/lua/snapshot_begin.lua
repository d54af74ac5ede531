-- snapshot_begin starts a broadcast's audience snapshot, built in bounded
-- steps by snapshot_step, shard by shard, each shard's chunks made final
-- by snapshot_progress, and ended by snapshot_copied. A snapshot taken
-- already is kept: {its size, 0} is returned.
-- A snapshot some of whose shards are final already (audp of them: an
-- earlier run made them so, then died) is resumed, not begun again: their
-- chunks and their part of the index stay, for batches over their ranks
-- may have run; the run's token is recorded and {-2, chunks to look at
-- (audc), final shards, the chunk count of that snapshot} is returned, and
-- the caller drops the chunks after the final ones and walks on.
-- Otherwise what an earlier run left half built is dropped (UNLINK: freed
-- in the background): aud (the single zset of a run before the chunked
-- snapshots, or an index) here, its chunks aud:{k} by the caller, in steps:
-- it gets their count, the field audc (the most chunks any run may have
-- made, kept until they are gone). The run's token is recorded (a step or
-- an end with another token fails, so a run that began later wins over one
-- still going), and so is its own count of chunks (auds); {-1, chunks to
-- drop} is returned.
-- KEYS: b, aud. ARGV: token, chunks.
local b = KEYS[1]
if redis.call('HGET', b, 'planned') then
  return {tonumber(redis.call('HGET', b, 'audience')), 0}
end
local old = tonumber(redis.call('HGET', b, 'audc') or '0')
local p = tonumber(redis.call('HGET', b, 'audp') or '0')
if p > 0 then
  redis.call('HSET', b, 'snap', ARGV[1])
  return {-2, old, p, tonumber(redis.call('HGET', b, 'auds'))}
end
redis.call('UNLINK', KEYS[2])
redis.call('HSET', b, 'snap', ARGV[1], 'audc', math.max(old, tonumber(ARGV[2])), 'auds', ARGV[2])
return {-1, old}
