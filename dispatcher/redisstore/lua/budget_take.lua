-- budget_take takes the cost of each message, in order, whose addition
-- keeps the spend of every period of the SMS budget within its cap, and
-- refuses the others: a whole batch in one call, atomic for every worker.
--
-- KEYS[1..n] are the periods' spends (integers, millionths of the
-- currency), KEYS[n+1..2n] their "ran out" marks. ARGV[1] is n, ARGV[2..n+1]
-- the caps, ARGV[n+2..2n+1] how long to keep each (seconds), the rest the
-- messages' costs. It answers {taken ("1"/"0" per cost), spend of each
-- period after, 1 per period that ran out with this call for the first
-- time, else 0}.
local n = tonumber(ARGV[1])
local spent, caps, keep, added, short = {}, {}, {}, {}, {}
for i = 1, n do
  spent[i] = tonumber(redis.call("GET", KEYS[i]) or "0")
  caps[i] = tonumber(ARGV[1 + i])
  keep[i] = tonumber(ARGV[1 + n + i])
  added[i] = 0
  short[i] = false
end
local taken = {}
for j = 2 * n + 2, #ARGV do
  local cost = tonumber(ARGV[j])
  local fits = true
  for i = 1, n do
    if spent[i] + cost > caps[i] then
      fits = false
      short[i] = true
    end
  end
  if fits then
    for i = 1, n do
      spent[i] = spent[i] + cost
      added[i] = added[i] + cost
    end
  end
  taken[#taken + 1] = fits and "1" or "0"
end
local out = {table.concat(taken)}
for i = 1, n do
  if added[i] > 0 then
    redis.call("INCRBY", KEYS[i], string.format("%d", added[i]))
  end
  redis.call("EXPIRE", KEYS[i], keep[i])
  out[1 + i] = tonumber(redis.call("GET", KEYS[i]) or "0")
  local first = 0
  if short[i] and redis.call("SET", KEYS[n + i], "1", "NX", "EX", keep[i]) then
    first = 1
  end
  out[1 + n + i] = first
end
return out
