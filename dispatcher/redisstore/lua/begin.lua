-- begin creates the deliveries of a batch that do not exist yet and
-- returns, per item, the status code each had before ('' when new), or
-- CODE.suppressed when the guard suppressed it (cancelled, or superseded by
-- a later update). A delivery a dead run left in sending is taken over
-- (returned as CODE.sending: send it again) or, once the guard trips,
-- settled (suppressed, or unknown when it had been handed to a provider);
-- one a live retry run is sending is left alone ('b'). A new delivery adds
-- its SMS segments to the broadcast's total, counts its fallback locale in
-- f:{locale}, and, when it is an extra delivery for a recipient (channel
-- fallback), adds one to pending; a late member's (catch-up, extra '2')
-- also adds one to the broadcast's late count. h is the handed set of the
-- run's lease ('' without one).
-- KEYS: b, d, aud, incseq. ARGV: now, seq, lp, h, then
-- field/record/segments/fallback/extra/position sextuples (position: the
-- record's dpos, dkeys.lua).
local b, d, aud, incseq, now = KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1]
local lp, h = ARGV[3], ARGV[4]
local why = guard(b, incseq, tonumber(ARGV[2]))
local out, fin, no = {}, 0, 0
dprefetch(d, 5, 6, 5)
tallied(b, function()
  for i = 5, #ARGV, 6 do
    local f, v, sg, fb, ex = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3], ARGV[i + 4]
    local old = dget(d, f, ARGV[i + 5])
    if old then
      local oc = string.sub(old, 1, 1)
      if oc == CODE.sending then
        if retryBusy(lp, f) then
          oc = 'b'
        elseif why then
          fin = fin + settle(b, d, f, h, why)
          oc = string.sub(dget(d, f), 1, 1)
        end
      end
      no = no + 1
      out[no] = oc
    else
      if ex ~= '0' then count(b, 'pending', 1) end
      if ex == '2' then count(b, 'late', 1) end
      local res = ''
      if why and not FINAL[string.sub(v, 1, 1)] then
        v, sg, fb, res = suppressed(v, why), 0, '', CODE.suppressed
      end
      fin = fin + move(b, d, f, nil, v)
      if sg > 0 then count(b, 'sms_segments', sg) end
      if fb ~= '' then redis.call('HINCRBY', b, 'f:' .. fb, 1) end
      no = no + 1
      out[no] = res
    end
  end
end, function() settled(b, aud, now, fin) end)
return out
