-- take is redis_rate's AllowN (see gcra.lua) with the time given or read
-- (clock). KEYS[1] is the bucket; ARGV is burst, rate, period in seconds,
-- cost and maybe now. It answers {cost, "-1", reset_after, now} when it
-- took cost tokens, else {0, retry_after, reset_after, now}, the
-- durations in seconds, now as clock() read it (so that the caller can
-- place the tokens on its own clock), to the microsecond: tostring keeps
-- 14 digits, 10 µs of seconds since 2017.
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local now, min_ttl = clock(5)
local retry_after, reset_after = gcra(KEYS[1], burst, rate, period, cost, now, min_ttl)
if retry_after >= 0 then
  return {0, tostring(retry_after), tostring(reset_after), string.format('%.6f', now)}
end
return {cost, "-1", tostring(reset_after), string.format('%.6f', now)}
