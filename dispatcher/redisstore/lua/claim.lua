-- claim claims a queued delivery for a retry: it becomes sending, unless
-- the guard suppresses it. A delivery a dead run left in sending is claimed
-- again, or settled once the guard trips (h is the handed set of the
-- retry's lease: a retry run holds the only lease of its delivery). It
-- returns the status code after the call ('' when there is no such
-- delivery). KEYS: b, d, aud, incseq. ARGV: now, seq, field, h.
local b, d, aud, incseq, now, f, h = KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[3], ARGV[4]
local old = dget(d, f)
if not old then return '' end
local oc = string.sub(old, 1, 1)
if oc ~= CODE.queued and oc ~= CODE.sending then return oc end
local why = guard(b, incseq, tonumber(ARGV[2]))
if why then
  if oc == CODE.sending then
    settled(b, aud, now, settle(b, d, f, h, why))
  else
    settled(b, aud, now, move(b, d, f, oc, suppressed(old, why)))
  end
  return string.sub(dget(d, f), 1, 1)
end
if oc == CODE.queued then
  move(b, d, f, oc, withCode(old, CODE.sending))
end
return CODE.sending
