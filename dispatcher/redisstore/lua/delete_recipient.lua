-- delete_recipient erases one recipient, its index entries, its outbox
-- list and its webhook endpoints; it returns 0 when there is no such
-- recipient (and erases nothing). An undecodable record is deleted anyway
-- (leaving its service, region and phone entries behind, which point at
-- nothing; the shard's stale-ix notes it).
--
--   KEYS[1] rb:{bucket} (the record's bucket)  KEYS[2] outbox:r:{id}  KEYS[3] wh:{id}
--   ARGV[1] key prefix  ARGV[2] id
local old = redis.call('HGET', KEYS[1], id)
if not old then return 0 end
local rec = decode(old)
if rec then
  unindex(rec)
else
  -- Its index entries stay: the shard's index sets may hold an id that is
  -- no recipient, so none of them is taken for everyone there (cover.lua).
  redis.call('SET', ARGV[1] .. 'stale-ix', '1')
end
redis.call('HDEL', KEYS[1], id)
redis.call('DEL', KEYS[2], KEYS[3])
return 1
