-- release_lease gives a lease up if still held. A clean release (nothing
-- of the run is left in sending) also unregisters it and drops its handed
-- set; after a failed run both stay, so the sweeper takes the work over
-- and a later update settles what it left, as after a crash. Once nothing
-- can read the broadcast's snapshot any more (done, or cancelled and
-- settled), the release claims its chunks (audClaim, audgc.lua, prepended)
-- and returns how many there may be: the caller drops them, in steps
-- (snapshot.go); else it returns 0 (the sweeper's DropFreedSnapshots
-- drops what no release claimed).
-- KEYS: lease, leases, h, b, aud, the plan's lease. ARGV: token, member,
-- clean, now (ms), claim (ms).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('DEL', KEYS[3])
end
return math.max(0, audClaim(KEYS[4], KEYS[5], tonumber(ARGV[4]), tonumber(ARGV[5]), KEYS[6]))
