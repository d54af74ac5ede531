-- delete_recipient erases one recipient, its index entries, its outbox
-- list and its webhook endpoints; it returns 0 when there is no such
-- recipient (and erases nothing). An undecodable record is deleted anyway
-- (leaving its service, region and phone entries behind, which point at
-- nothing).
--
--   KEYS[1] r:{id}  KEYS[2] ix:all  KEYS[3] outbox:r:{id}  KEYS[4] wh:{id}
--   ARGV[1] key prefix  ARGV[2] id
local old = redis.call('GET', KEYS[1])
if not old then return 0 end
local rec = decode(old)
if rec then unindex(rec) end
redis.call('SREM', KEYS[2], id)
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
return 1
