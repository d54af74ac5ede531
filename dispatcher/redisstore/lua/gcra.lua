-- gcra.lua defines gcra(), redis_rate's AllowN step on one bucket (v10.0.1,
-- GCRA by Pavel Pravosud, https://github.com/rwz/redis-gcra), with its
-- arithmetic and TAT format exactly: take cost tokens from key at rate per
-- period with burst, at now. It answers the retry_after (-1 when it took
-- them) and the reset_after, in seconds. take.lua and take_each.lua share
-- it, so a bucket may be used by either.
local function gcra(key, burst, rate, period, cost, now, min_ttl)
  local emission_interval = period / rate
  local increment = emission_interval * cost
  local burst_offset = emission_interval * burst

  local tat = redis.call("GET", key)
  if not tat then
    tat = now
  else
    tat = tonumber(tat)
  end
  tat = math.max(tat, now)

  local new_tat = tat + increment
  local allow_at = new_tat - burst_offset
  local diff = now - allow_at

  if diff < 0 then
    return -diff, tat - now
  end
  local reset_after = new_tat - now
  if reset_after > 0 then
    redis.call("SET", key, new_tat, "EX", math.max(math.ceil(reset_after), min_ttl))
  end
  return -1, reset_after
end

-- clock returns now and min_ttl: now is ARGV[arg], the script's optional
-- last argument (seconds since 2017-01-01, the Limiter's Clock), or else
-- Redis's TIME in the same unit, as redis_rate reads it; min_ttl is the
-- least time a bucket key is kept: a day on the Limiter's clock (see
-- Limiter.Clock), else nothing.
local function clock(arg)
  local jan_1_2017 = 1483228800
  local now = tonumber(ARGV[arg])
  if now then return now, 86400 end
  local t = redis.call("TIME")
  return (t[1] - jan_1_2017) + (t[2] / 1000000), 0
end
