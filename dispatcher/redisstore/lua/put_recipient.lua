-- put_recipient upserts one recipient and moves its index entries.
--
--   KEYS[1] rb:{bucket} (the record's bucket: field id)  KEYS[2] catchup
--   ARGV[1] key prefix  ARGV[2] id  ARGV[3] recipient record (packed, or JSON; its opt-out
--   list empty)  ARGV[4] phone ('' for none)
--   ARGV[5] catch-up time (unix ms; '' for none)
--   ARGV[6] number of services n  ARGV[7..6+n] services  ARGV[7+n..] regions
--
-- With a catch-up time, the recipient is added to the catch-up set in the
-- same write (dispatcher.CatchUp gives it the current state of the open
-- incidents it may now belong to or be reachable for): no put is missed.
--
-- The phone index (ix:tel:{bucket}, see recipient.lua) finds the
-- recipients behind an inbound SMS.
--
-- Opt-outs are the recipient's own choice, not the operator's: the stored
-- opt_out list survives every put (the new record never carries one).
--
-- A stored record that does not decode is not overwritten (its index
-- entries are unknown): the script fails and the recipient must be deleted
-- first.
local raw = ARGV[3]
local old = redis.call('HGET', KEYS[1], id)
if old then
  local rec = decode(old)
  if not rec then
    return redis.error_reply('ERR tocsin: stored recipient ' .. id .. ' does not decode; delete it first')
  end
  unindex(rec)
  local optout = labels(rec.opt_out)
  if #optout > 0 then raw = withOptOut(raw, optout) end
end
redis.call('HSET', KEYS[1], id, raw)
if ARGV[4] ~= '' then
  phoneAdd(ARGV[4], id)
end
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[5], id)
end
local n = tonumber(ARGV[6])
local svcs, regs = {}, {}
for i = 7, 6 + n do svcs[#svcs + 1] = ARGV[i] end
for i = 7 + n, #ARGV do regs[#regs + 1] = ARGV[i] end
index('SADD', 'svc', svcs)
index('SADD', 'reg', regs)
return 1
