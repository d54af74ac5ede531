-- release_lease gives a lease up if still held. A clean release (nothing
-- of the run is left in sending) also unregisters it and drops its handed
-- set; after a failed run both stay, so the sweeper takes the work over
-- and a later update settles what it left, as after a crash. Once nothing
-- can read the broadcast's snapshot any more (done, or cancelled and
-- settled), the release claims its chunks (audClaim, audgc.lua, prepended)
-- and returns how many there may be: the caller drops them, in steps
-- (snapshot.go); else it returns 0 (the sweeper's DropFreedSnapshots
-- drops what no release claimed).
--
-- The run's outcome count (lease..':o:'..token, journal.lua) goes with the
-- lease. With want (ARGV[6]) at 0 or more, a clean release first compares
-- it with the outcomes the run wrote: fewer means a write Redis
-- acknowledged is gone (a failover to a replica that never got it), and a
-- delivery the run handed over may be left in sending; the release is
-- then not clean, so that the sweeper takes the run's work over, and it
-- returns -1. The count is the run's own (its token), never a dead run's
-- of the same name. So it is, with want set, when the master's replication
-- id is not the one noted when the run took its lease (acquire_lease): a
-- failover came while the run held it, and writes the run made before it
-- (its begin, a held record, none of them counted) may be gone.
-- KEYS: lease, leases, h, b, aud, the plan's lease. ARGV: token, member,
-- clean, now (ms), claim (ms), want (-1: no check).
local count, noted = KEYS[1] .. ':o:' .. ARGV[1], KEYS[1] .. ':m:' .. ARGV[1]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  redis.call('DEL', count, noted) -- the token's own: nothing else reads them
  return 0
end
redis.call('DEL', KEYS[1])
local got = tonumber(redis.call('GET', count) or '0')
local master = redis.call('GET', noted)
redis.call('DEL', count, noted)
if ARGV[3] == '1' and tonumber(ARGV[6]) >= 0 then
  if got < tonumber(ARGV[6]) then return -1 end
  if master and master ~= masterID() then return -1 end
end
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('DEL', KEYS[3])
end
return math.max(0, audClaim(KEYS[4], KEYS[5], tonumber(ARGV[4]), tonumber(ARGV[5]), KEYS[6]))
