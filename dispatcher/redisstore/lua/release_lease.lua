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
-- With check ('1', set where Redis may lose acknowledged writes in a
-- failover: Sentinel, Cluster), a clean release first reads the records
-- the run handed over (its handed set h): one still in sending, not taken
-- by a live retry run, means an outcome the run wrote is gone (written to
-- a master that died before its replica had it). The release is then not
-- clean, so that the sweeper takes the batch over (the delivery is sent
-- again, as after a crash) rather than leave it in sending for good, its
-- broadcast never done and the incident's next update waiting behind it;
-- it returns -1.
-- KEYS: lease, leases, h, b, aud, the plan's lease, d. ARGV: token,
-- member, clean, now (ms), claim (ms), check, lease prefix.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[3] == '1' then
  if ARGV[6] == '1' then
    local handed = redis.call('SMEMBERS', KEYS[3])
    for i = 1, #handed do
      local f = handed[i]
      local v = dget(KEYS[7], f)
      if v and string.sub(v, 1, 1) == CODE.sending and not retryBusy(ARGV[7], f) then return -1 end
    end
  end
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('DEL', KEYS[3])
end
return math.max(0, audClaim(KEYS[4], KEYS[5], tonumber(ARGV[4]), tonumber(ARGV[5]), KEYS[6]))
