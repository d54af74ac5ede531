-- lapsed unregisters the batch leases whose key is gone (the lease lapsed)
-- and returns their members: each to one caller only.
-- KEYS: leases, then one lease key per member. ARGV: the members.
local out = {}
for i = 1, #ARGV do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 and redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    out[#out + 1] = ARGV[i]
  end
end
return out
