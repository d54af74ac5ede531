-- catchup_done removes taken recipients from the catch-up set, each only
-- while still scored as taken: a put meanwhile made it due again, and it
-- stays for the next taker. KEYS: catchup. ARGV: id/score pairs.
local n = 0
for i = 1, #ARGV, 2 do
  local sc = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if sc and tonumber(sc) == tonumber(ARGV[i + 1]) then
    n = n + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return n
