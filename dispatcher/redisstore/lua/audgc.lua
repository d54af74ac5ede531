-- audClaim claims the drop of broadcast b's audience snapshot (aud, its
-- index or single zset, and its chunks aud:{k}) once nothing can read it
-- any more: the broadcast is done (finish unlinked the index already), or
-- it is cancelled, planned (or its plan died: no plan lease, plan being
-- the lease's key; a cancelled broadcast is never planned again, so its
-- final shards are all it will have), and every delivery of it is final (pending 0:
-- every member of the snapshot has its final record, so no batch, retry,
-- sweeper's settle or catch-up needs it; the index goes here). Only the
-- index is read with the chunks, in one script (audSlice, audience_has),
-- so once it is gone nothing reads a chunk but a compensation's copy,
-- which reads the delivery records after the snapshot (compensation.go).
-- The claim is audgc, the time (ms) it lapses: a process that died while
-- dropping leaves it to the next claim after. It returns the chunks that
-- may exist (audc) when it claimed them, 0 when not yet (or another claim
-- holds them), -1 when nothing is left to drop (or no broadcast).
local function audClaim(b, aud, now, claim, plan)
  local st = redis.call('HGET', b, 'state')
  if not st then return -1 end
  if st == 'cancelled' then
    if not redis.call('HGET', b, 'planned') then
      if not plan or redis.call('EXISTS', plan) == 1 then return 0 end
      -- The plan died (or its lease lapsed while it still runs): its
      -- snapshot is closed here as snapshot_copied closes a cancelled
      -- one, so that a run still going fails on its next step
      -- (SUPERSEDED: no chunk added after the drop, none left behind)
      -- and a later run takes the snapshot as it is.
      redis.call('HDEL', b, 'snap')
      redis.call('HSETNX', b, 'audience', redis.call('HGET', b, 'audn') or '0')
      redis.call('HSET', b, 'planned', '1')
    end
    if tonumber(redis.call('HGET', b, 'pending') or '0') > 0 then return 0 end
    redis.call('UNLINK', aud)
  elseif st ~= 'done' then
    return 0
  end
  local c = tonumber(redis.call('HGET', b, 'audc') or '0')
  if c <= 0 then return -1 end
  if tonumber(redis.call('HGET', b, 'audgc') or '0') > now then return 0 end
  redis.call('HSET', b, 'audgc', now + claim)
  return c
end
