-- lapsed claims the registered batch leases whose key is gone (the lease
-- lapsed) and returns them: each to one caller only until its claim runs
-- out. The registry entry stays until the caller acted on it (enqueued
-- the take-over; lapsed_taken.lua drops it): a sweeper that dies or fails
-- to enqueue leaves it claimed, and once the claim runs out the next
-- sweep claims it again, with the same take-over token (the take-over
-- task's id, so enqueueing it twice is harmless).
-- KEYS: leases, swept (member -> "{claim end ms} {token}"), then one lease
-- key per member. ARGV: now ms, claim ms, then per member: the member, a
-- new token (used unless an earlier claim named one).
-- Returns per member claimed: the member, its token, its claim's value.
local now = tonumber(ARGV[1])
local till = now + tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV, 2 do
  local m, token = ARGV[i], ARGV[i + 1]
  if redis.call('EXISTS', KEYS[(i - 1) / 2 + 2]) == 0 and redis.call('ZSCORE', KEYS[1], m) then
    local due = nil
    local c = redis.call('HGET', KEYS[2], m)
    if c then
      local d, t = string.match(c, '^(%d+) (%S+)$')
      if d then due, token = tonumber(d), t end
    end
    if not due or due <= now then
      local v = till .. ' ' .. token
      redis.call('HSET', KEYS[2], m, v)
      out[#out + 1] = m
      out[#out + 1] = token
      out[#out + 1] = v
    end
  end
end
return out
