-- snapshot_begin starts a broadcast's audience snapshot, built in bounded
-- steps by snapshot_step and ended by snapshot_copied. A snapshot taken
-- already is kept: its size is returned. Otherwise what an earlier run
-- left half built is dropped (UNLINK: freed in the background), the run's
-- token is recorded (a step or an end with another token fails, so a run
-- that began later wins over one still going), and -1 is returned.
-- KEYS: b, aud. ARGV: token.
local b = KEYS[1]
if redis.call('HGET', b, 'planned') then
  return tonumber(redis.call('HGET', b, 'audience'))
end
redis.call('UNLINK', KEYS[2])
redis.call('HSET', b, 'snap', ARGV[1])
return -1
