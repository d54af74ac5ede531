-- migrate_shard moves one key of a recipient shard from the layout before
-- the record buckets (MigrateLayout, migrate.go), after recipient.lua
-- (ARGV[1] the shard's prefix, ARGV[2] unused). It is idempotent, and
-- deletes the old key last: a crash midway leaves it for the next run.
--
--   ARGV[3] 'r': KEYS[1] r:{id} (string), KEYS[2] the record's bucket, ARGV[4] the id.
--                A record already in the bucket (a put since) is kept.
--   ARGV[3] 'ph': KEYS[1] ix:ph:{last4} (hash: number -> ids joined by commas).
--   ARGV[3] 'phone': KEYS[1] ix:phone:{e164} (set of ids), ARGV[4] the number.
-- Returns 1 when the old key existed.
local what = ARGV[3]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if what == 'r' then
  redis.call('HSETNX', KEYS[2], ARGV[4], redis.call('GET', KEYS[1]))
elseif what == 'ph' then
  local kv = redis.call('HGETALL', KEYS[1])
  for i = 1, #kv, 2 do
    for _, rid in ipairs(commaList(kv[i + 1])) do phoneAdd(kv[i], rid) end
  end
elseif what == 'phone' then
  for _, rid in ipairs(redis.call('SMEMBERS', KEYS[1])) do phoneAdd(ARGV[4], rid) end
else
  return redis.error_reply('ERR tocsin: migrate_shard: unknown ' .. tostring(what))
end
redis.call('DEL', KEYS[1])
return 1
