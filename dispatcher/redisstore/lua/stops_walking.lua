-- stopsWalking tells whether the audience snapshot of broadcast b may end
-- at its final shards: b is cancelled, or a later update of its incident
-- supersedes it (incseq past seq, as the delivery scripts' guard has it;
-- seq 0 or nil, a notice: never).
local function stopsWalking(b, incseq, seq)
  if redis.call('HGET', b, 'state') == 'cancelled' then return true end
  seq = tonumber(seq or '0') or 0
  return incseq ~= nil and seq > 0 and tonumber(redis.call('GET', incseq) or '0') > seq
end
