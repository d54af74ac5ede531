-- delete_catalog removes one entry of the catalog hash and, only if it
-- was there, moves the catalog's version.
--
--   KEYS[1] catalog  ARGV[1] the entry's field  ARGV[2] the version field
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
return 1
