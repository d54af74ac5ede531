-- prelude.lua: what every delivery script shares; lua.go prepends it to
-- each of them, after a header it generates from the Go side:
--
--   CODE   status name -> its one-character code (statusCodes in deliveries.go)
--   FINAL  code -> true when the status is final (DeliveryStatus.Final)
--   MOVE   old code ('' for a delivery not stored yet) -> new code -> true
--          when an outcome may move a delivery so (dispatcher.CanMove)
--
-- A delivery record (field {channel}.{recipient} of a bucket of b:{id}:d:
-- dkeys.lua, read and written with dget and dset) is
--
--   {code}|{attempts}|{updated}|{locale}|{provider id}|{sms}|{reason}
--
-- encodeRecord (deliveries.go) writes it whole; the helpers below patch it.
-- updated is "+{ms after the sent or else queued time, base 36; none for
-- 0}" when the
-- record's evidence (in its locale field) has those times, else unix ms
-- (stamp writes it so).
-- b:{id} counts the deliveries of each channel in each status in fields
-- c:{channel}:{code}; only move() touches them.

-- field returns the position in record v where its nth field starts. It
-- raises on a record of fewer fields.
local function field(v, n)
  local pos = 1
  for _ = 2, n do pos = string.find(v, '|', pos, true) + 1 end
  return pos
end

-- recode returns record v in status code with reason why, all else kept.
local function recode(v, code, why)
  return code .. string.sub(v, 2, field(v, 7) - 1) .. why
end

-- withCode returns record v in status code, all else kept.
local function withCode(v, code)
  return code .. string.sub(v, 2)
end

-- split returns the seven fields of record v, or nil when it is corrupt.
local function split(v)
  local parts, pos = {}, 1
  for _ = 1, 6 do
    local i = string.find(v, '|', pos, true)
    if not i then return nil end
    parts[#parts + 1] = string.sub(v, pos, i - 1)
    pos = i + 1
  end
  parts[7] = string.sub(v, pos)
  return parts
end

-- stamp returns time now (unix ms) as field 3 of a record whose field 4
-- is loc: relative to its sent time (",s", ms after ",q") or else its
-- queued time (",q", unix ms), both base 36, as encodeRecord writes it.
local function stamp(loc, now)
  local q = tonumber(string.match(loc, ',q(%w+)') or '', 36)
  if not q then return now end
  local base = q + (tonumber(string.match(loc, ',s(%w+)') or '', 36) or 0)
  local d = tonumber(now) - base
  if d < 0 then return now end
  local digits, out = '0123456789abcdefghijklmnopqrstuvwxyz', ''
  while d > 0 do
    local r = d % 36
    out = string.sub(digits, r + 1, r + 1) .. out
    d = (d - r) / 36
  end
  return '+' .. out
end

local function suppressed(v, why) return recode(v, CODE.suppressed, why) end
local function unknown(v, why) return recode(v, CODE.unknown, why) end

-- canMove is dispatcher.CanMove on codes (oc nil: no delivery yet).
local function canMove(oc, new)
  local to = MOVE[oc or '']
  return to ~= nil and to[new] == true
end

-- move stores record v (its first character is its status code) as
-- delivery f of b's deliveries d, whose code was oc (nil when new), and
-- moves the channel's counters. It returns what the broadcast's pending
-- count loses: 1 when the delivery became final, -1 when it stopped being
-- final, else 0.
-- tally, while tallied runs (a table: counter field -> change, and its
-- fields in order in tally.order), collects move()'s counter changes
-- instead of writing each.
local tally = nil

local function count(b, c, by)
  if not tally then
    redis.call('HINCRBY', b, c, by)
  elseif tally[c] then
    tally[c] = tally[c] + by
  else
    tally[c] = by
    tally.order[#tally.order + 1] = c
  end
end

-- tallied runs fn with move()'s counter changes collected, then writes
-- the records dset buffered (dflush, dkeys.lua) and each counter once (one
-- HINCRBY per counter rather than two per delivery moved). Records and
-- counters are written even when fn raises, so that they agree with each
-- other (Redis keeps a script's writes up to an error), and so is after
-- (the scripts' settled: the pending count of the records written, which
-- would otherwise never fall and leave the broadcast sending) once the
-- records were all written; then the error is raised again.
local function tallied(b, fn, after)
  tally = { order = {} }
  local ok, err = pcall(fn)
  local flushed, ferr = pcall(dflush)
  if ok and not flushed then ok, err = false, ferr end
  local t = tally
  tally = nil
  for _, c in ipairs(t.order) do
    if t[c] ~= 0 then redis.call('HINCRBY', b, c, t[c]) end
  end
  -- Not when the records' flush failed: some records counted in fin may
  -- be unwritten, and a pending count too high (the broadcast stays
  -- sending) is the safer error than one too low (finished early). A
  -- retry lowers it for the records the flush did not write, not for any
  -- it did (they are final now and move nothing). That partial case is
  -- out of reach, though: the flush writes only hashes dprefetch has just
  -- read (a key of the wrong type raised there, before any write), and
  -- Redis refuses a script's write past maxmemory only until the script
  -- has written once, so an OOM refuses the first HSET or none.
  if after and flushed then
    local aok, aerr = pcall(after)
    if ok and not aok then ok, err = false, aerr end
  end
  if not ok then error(err, 0) end
end

-- counterNames caches the counter fields: channel -> code -> 'c:{channel}:{code}'
-- (a string built once a script, not twice a delivery). The same cache as
-- dkeys.lua's bucketKey, written out: a shared helper's extra call per
-- counter cost Redis 5 % a delivery (TestDeliveryLayoutsCost).
local counterNames = {}

local function counter(ch, code)
  local t = counterNames[ch]
  if not t then
    t = {}
    counterNames[ch] = t
  end
  local c = t[code]
  if not c then
    c = 'c:' .. ch .. ':' .. code
    t[code] = c
  end
  return c
end

local function move(b, d, f, oc, v)
  local new = string.sub(v, 1, 1)
  dset(d, f, v)
  local ch = string.match(f, '^[^.]+')
  if oc then count(b, counter(ch, oc), -1) end
  count(b, counter(ch, new), 1)
  local was = oc ~= nil and FINAL[oc] == true
  local is = FINAL[new] == true
  if is and not was then return 1 end
  if was and not is then return -1 end
  return 0
end

-- apply applies one outcome, record v, to delivery f when canMove lets
-- it. It returns applied (0 or 1) and what pending loses (see move). p is
-- the record's dpos (dkeys.lua), when the caller has it.
local function apply(b, d, f, v, p)
  local old = dget(d, f, p)
  local oc = old and string.sub(old, 1, 1) or nil
  if not canMove(oc, string.sub(v, 1, 1)) then return 0, 0 end
  return 1, move(b, d, f, oc, v)
end

-- A broadcast's audience snapshot is chunked (snapshot.go): the zsets
-- aud:{k} of its members by audChunk (snapshot.go: a range of record
-- buckets each), each ordered by id, and the
-- index, the string aud itself, 4 bytes big-endian per chunk: where the
-- chunk starts in the snapshot's order (chunk 0's members, then chunk 1's,
-- ...). A snapshot taken before the chunks (a broadcast in flight at an
-- upgrade) is the one zset aud. (A string, so that a worker of a version
-- before reading a chunked snapshot fails with WRONGTYPE, and its batch is
-- retried, rather than reading nobody.)

-- audChunks returns how many chunks snapshot aud has: 0 for one zset (or
-- none).
local function audChunks(aud)
  local t = redis.call('TYPE', aud)
  if type(t) == 'table' then t = t.ok end
  if t ~= 'string' then return 0 end
  return redis.call('STRLEN', aud) / 4
end

-- audSlice returns the members of snapshot aud at ranks [start, stop).
local function audSlice(aud, start, stop)
  local ix = aud
  local c = audChunks(aud)
  if c == 0 then
    return redis.call('ZRANGE', aud, start, stop - 1)
  end
  local function at(k)
    local w, x, y, z = string.byte(redis.call('GETRANGE', ix, 4 * k, 4 * k + 3), 1, 4)
    return ((w * 256 + x) * 256 + y) * 256 + z
  end
  -- The last chunk that starts at or before start (an empty chunk starts
  -- where the next one does).
  local lo, hi = 0, c - 1
  while lo < hi do
    local mid = math.floor((lo + hi + 1) / 2)
    if at(mid) <= start then lo = mid else hi = mid - 1 end
  end
  -- The first chunk that starts at or after stop (c: none): the slice is
  -- in chunks [lo, hi).
  local a, z = lo, c
  while a < z do
    local mid = math.floor((a + z) / 2)
    if at(mid) >= stop then z = mid else a = mid + 1 end
  end
  local hi = a
  -- Their starts in one read, and a ZRANGE for each chunk that holds
  -- members only: an audience far smaller than the sets scanned for it
  -- (its chunk count comes from those) leaves most chunks empty.
  local span = redis.call('GETRANGE', ix, 4 * lo, 4 * hi - 1)
  local function startOf(k)
    local w, x, y, v = string.byte(span, 4 * (k - lo) + 1, 4 * (k - lo) + 4)
    return ((w * 256 + x) * 256 + y) * 256 + v
  end
  local out = {}
  for k = lo, hi - 1 do
    local o = startOf(k)
    if k == hi - 1 or startOf(k + 1) > o then
      local ids = redis.call('ZRANGE', aud .. ':' .. k, math.max(start - o, 0), stop - o - 1)
      for i = 1, #ids do out[#out + 1] = ids[i] end
    end
  end
  return out
end

-- finish ends a sending broadcast whose pending count reached zero. Its
-- snapshot goes: the single zset or the index here (UNLINK: freed in the
-- background), the chunks by ReleaseLease or the sweeper, in steps
-- (snapshot.go, audgc.lua).
local function finish(b, aud, now)
  if tonumber(redis.call('HGET', b, 'pending')) <= 0 and redis.call('HGET', b, 'state') == 'sending' then
    redis.call('HSET', b, 'state', 'done', 'finished', now)
    redis.call('UNLINK', aud)
  end
end

-- settled takes fin deliveries off b's pending count (see move), and
-- finishes b when none is left.
local function settled(b, aud, now, fin)
  if fin ~= 0 then
    redis.call('HINCRBY', b, 'pending', -fin)
    finish(b, aud, now)
  end
end

-- guard decides whether deliveries of a broadcast may still start: not
-- once it is cancelled, nor once a later update of its incident exists
-- (latest state wins). It returns why not, or nil. incseq is the
-- incident's inc:{id}:seq; seq is the broadcast's update.
local function guard(b, incseq, seq)
  if redis.call('HGET', b, 'state') == 'cancelled' then return 'cancelled' end
  if seq > 0 and tonumber(redis.call('GET', incseq) or '0') > seq then return 'superseded' end
  return nil
end

-- A run holds a lease (b:{id}:lease:{name}); the deliveries it hands to a
-- provider are added to b:{id}:h:{name} first. Runs of one lease name take
-- turns (a new one only once the last one's lease lapsed), so a delivery
-- still in sending under a lease nobody holds was left by a dead run, and
-- the set says whether it may have gone out.

-- retryBusy tells whether a live retry run is sending delivery f (lp is
-- the prefix of the broadcast's lease keys).
local function retryBusy(lp, f)
  return redis.call('EXISTS', lp .. 'r:' .. f) == 1
end

-- settle settles delivery f, left in sending by a dead run, once the guard
-- tripped (why): unknown when it is in the run's handed set h ('' for
-- none), suppressed otherwise. It returns 1 when it settled it, else 0.
local function settle(b, d, f, h, why)
  local old = dget(d, f)
  if not old or string.sub(old, 1, 1) ~= CODE.sending then return 0 end
  local v = suppressed(old, why)
  if h ~= '' and redis.call('SISMEMBER', h, f) == 1 then v = unknown(old, why) end
  return move(b, d, f, CODE.sending, v)
end

-- evidence stores what a group of outcomes brings to the evidence ledger,
-- starting at ARGV[i]: a count n, then n triples (what, field, value):
-- what 't' keeps a text under its hash (HSETNX kt: one per distinct text),
-- 'x' keeps an attempt that a retry follows (HSET kx, field
-- "{delivery field}#{attempt}"). It returns where the outcomes start.
local function evidence(kt, kx, i)
  local n = tonumber(ARGV[i])
  for j = i + 1, i + 3 * n, 3 do
    if ARGV[j] == 't' then
      redis.call('HSETNX', kt, ARGV[j + 1], ARGV[j + 2])
    else
      redis.call('HSET', kx, ARGV[j + 1], ARGV[j + 2])
    end
  end
  return i + 1 + 3 * n
end
