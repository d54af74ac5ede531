-- settle settles, once the guard trips (a later update exists, or the
-- broadcast was cancelled), the deliveries a broadcast's dead runs left in
-- sending: unknown when handed to a provider, suppressed otherwise (a
-- delivery a live retry run is sending is left to it). The runs are the
-- broadcast's registered leases (members {id}|{name} of the leases zset,
-- lex-ordered) whose key is gone: a batch's deliveries are those of its
-- audience slice on any channel, a retry's or a late member's ("c:{rid}")
-- those of the recipient it names, a group of late members' ("cg:{hash}")
-- those of the members it claimed (its member is dropped once settled). also names one more lease (a
-- batch's lapsed lease that a sweeper claimed, and settles by name); the
-- other leases a sweeper claimed (in swept) are left to it. It returns
-- how many it settled. KEYS: b, d, aud, incseq, leases, swept. ARGV: now, seq, lp,
-- hp, id, also, then the channels.
local b, d, aud, incseq, leases, now = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1]
local lp, hp, id, also = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local why = guard(b, incseq, tonumber(ARGV[2]))
if not why then return 0 end
local fin = 0
local members = redis.call('ZRANGEBYLEX', leases, '[' .. id .. '|', '[' .. id .. '|\255')
local mine = id .. '|' .. also
if also ~= '' and not redis.call('ZSCORE', leases, mine) then members[#members + 1] = mine end
for _, m in ipairs(members) do
  local name = string.sub(m, #id + 2)
  if redis.call('EXISTS', lp .. name) == 0 and (m == mine or redis.call('HEXISTS', KEYS[6], m) == 0) then
    local h = hp .. name
    local start, stop = string.match(name, '^b:(%d+):(%d+)$')
    local rids = {}
    if start then
      rids = audSlice(aud, tonumber(start), tonumber(stop))
    else
      -- A retry's run may have begun its recipient's channel fallback too.
      local rid = string.match(name, '^r:[^.]+%.(.+)$') or string.match(name, '^c:(.+)$')
      if rid then rids = {rid} end
      -- A group of late members ("cg:{hash}"): those it claimed (claim_late.lua).
      if string.sub(name, 1, 3) == 'cg:' then rids = redis.call('SMEMBERS', lp .. name .. ':m') end
      redis.call('ZREM', leases, m)
    end
    for _, rid in ipairs(rids) do
      for c = 7, #ARGV do
        local f = ARGV[c] .. '.' .. rid
        if not retryBusy(lp, f) then fin = fin + settle(b, d, f, h, why) end
      end
    end
  end
end
settled(b, aud, now, fin)
return fin
