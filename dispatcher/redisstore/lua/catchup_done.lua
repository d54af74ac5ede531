-- catchup_done settles taken recipients of the catch-up set, each only
-- while still scored as taken (a put meanwhile made it due again, and it
-- stays for the next taker): removed, or due again at a later time.
-- KEYS: catchup. ARGV: id/taken score/again triples (again '': remove).
local n = 0
for i = 1, #ARGV, 3 do
  local sc = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if sc and tonumber(sc) == tonumber(ARGV[i + 1]) then
    if ARGV[i + 2] == '' then
      n = n + redis.call('ZREM', KEYS[1], ARGV[i])
    else
      redis.call('ZADD', KEYS[1], 'XX', ARGV[i + 2], ARGV[i])
    end
  end
end
return n
