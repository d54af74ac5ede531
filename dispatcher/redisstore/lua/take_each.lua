-- take_each is take with a cost of 1, looped over many keys, so a batch's
-- guard is one round trip; it applies each key's slow-down in the same
-- round trip.
--
-- KEYS[1..n] are the buckets, KEYS[n+1..2n] their slow-down keys; ARGV is
-- burst, rate, period in seconds and maybe now (clock). It answers 1 (took
-- one) or 0 per bucket.
local n = #KEYS / 2
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local now, min_ttl = clock(4)
local out = {}
for i = 1, n do
  local p = period
  local factor = tonumber(redis.call("GET", KEYS[n + i]) or "")
  if factor and factor > 0 and factor < 1 then
    p = period / factor
  end
  local retry_after = gcra(KEYS[i], burst, rate, p, 1, now, min_ttl)
  out[i] = retry_after < 0 and 1 or 0
end
return out
