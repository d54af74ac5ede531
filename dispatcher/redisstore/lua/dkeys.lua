-- dkeys.lua: where a broadcast's delivery records live (deliveries_buckets.go,
-- "Delivery buckets"). Record {channel}.{recipient} of broadcast id is in
-- one of three layouts, which field db of b:{id} fixes for the broadcast
-- (the first record written fixes it, from its audience):
--
--   one hash   no db, or db 0: the hash b:{id}:d (below an audience of
--              DELIVERY_BUCKETS_FROM, and every broadcast written before
--              the buckets).
--   positional db "p{n}": field of bucket hash b:{id}:d:{k}, k =
--              floor(dpos(recipient) × n / 2^29): buckets cut the line of
--              dpos in n equal ranges, as the snapshot's chunks cut the
--              line of audHash, both led by the recipient's record bucket
--              (snapshot.go), so a batch (a rank range of the snapshot)
--              falls in a few consecutive buckets. b:{id}:d is then the
--              string "p": a worker of a version before, which would read
--              and write that one hash (or refix db), fails on it
--              (WRONGTYPE: its batch is retried) instead.
--   hashed     db n (a number > 0; broadcasts of 4M and more fixed by the
--              version before the positional layout): field of
--              b:{id}:d:{dbucket(field, n)}.
--
-- n is the audience over DELIVERIES_PER_BUCKET, so that a bucket stays
-- small (a listpack when its values fit hash-max-listpack-value). Scripts
-- name d = b:{id}:d (KEYS); the buckets share its hash tag, so its slot.
local DELIVERIES_PER_BUCKET = 64

-- DELIVERY_BUCKETS_FROM is the least audience whose records go to
-- buckets; a smaller broadcast keeps the one hash b:{id}:d (n = 0): a
-- hash this small neither grows its table in one long call (a table of
-- 4M slots is 32 MB, allocated at once) nor costs much more memory.
-- (lua.go's dkeysLua sets it lower for a bench or a test run when
-- TOCSIN_BENCH_DELIVERY_BUCKETS_FROM is set.)
local DELIVERY_BUCKETS_FROM = 4000000

-- dbucket is the bucket of field f ("{channel}.{recipient}") of n in the
-- hashed layout: a 32-bit polynomial hash (31) of the recipient, mod n;
-- deliveryBucket in deliveries_buckets.go is the same.
local function dbucket(f, n)
  local h = 0
  for i = (string.find(f, '.', 1, true) or 0) + 1, #f do
    h = (h * 31 + string.byte(f, i)) % 4294967296
  end
  return h % n
end

-- XOR4[16a + b + 1] is a xor b of two 4-bit numbers (Redis's Lua has a
-- bit library, miniredis's not).
local XOR4 = nil

-- dpos is the position of field f's recipient on the line of the
-- positional layout, as deliveryPos (deliveries_buckets.go) computes it:
-- with h = fnv32a(recipient), its record bucket across the shards
-- (h mod 16 × 512 + h / 16 mod 512) times 2^16, plus the 16 bits of h
-- above those (h / 8192 mod 2^16). Callers that have it from Go pass it
-- to dget instead (ARGV), so that a record costs no hashing in Lua.
local function dpos(f)
  if not XOR4 then
    XOR4 = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14,
    2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,
    3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12,
    4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11,
    5, 4, 7, 6, 1, 0, 3, 2, 13, 12, 15, 14, 9, 8, 11, 10,
    6, 7, 4, 5, 2, 3, 0, 1, 14, 15, 12, 13, 10, 11, 8, 9,
    7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8,
    8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7,
    9, 8, 11, 10, 13, 12, 15, 14, 1, 0, 3, 2, 5, 4, 7, 6,
    10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0, 1, 6, 7, 4, 5,
    11, 10, 9, 8, 15, 14, 13, 12, 3, 2, 1, 0, 7, 6, 5, 4,
    12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3,
    13, 12, 15, 14, 9, 8, 11, 10, 5, 4, 7, 6, 1, 0, 3, 2,
    14, 15, 12, 13, 10, 11, 8, 9, 6, 7, 4, 5, 2, 3, 0, 1,
    15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
    }
  end
  local h = 2166136261
  for i = (string.find(f, '.', 1, true) or 0) + 1, #f do
    local c, lo = string.byte(f, i), h % 256
    local a, b = lo % 16, c % 16
    local x = XOR4[a * 16 + b + 1] + 16 * XOR4[(lo - a) / 16 * 16 + (c - b) / 16 + 1]
    h = h - lo + x
    -- h × 16777619 mod 2^32 = h × 403 + (h mod 2^8) × 2^24, mod 2^32 (exact
    -- in a double: below 2^42).
    h = (h * 403 + (h % 256) * 16777216) % 4294967296
  end
  return ((h % 16) * 512 + math.floor(h / 16) % 512) * 65536 + math.floor(h / 8192) % 65536
end

-- dlayoutOf caches, per deliveries key, its bucket count (0: the one hash)
-- and whether it is positional.
local dlayoutOf = {}

-- dbuckets returns the bucket count of deliveries d (0: the one hash d)
-- and whether the buckets are positional, or nil when none is fixed and
-- nothing stored yet, unless write, which fixes it (HSET b db).
local function dbuckets(d, write)
  local l = dlayoutOf[d]
  if l then return l[1], l[2] end
  local b = string.sub(d, 1, -3) -- b:{id}:d -> b:{id}
  local db = redis.call('HGET', b, 'db')
  local n, pos = nil, false
  if db then
    if string.sub(db, 1, 1) == 'p' then
      n, pos = tonumber(string.sub(db, 2)), true
    else
      n = tonumber(db)
    end
  end
  if not n then
    if redis.call('EXISTS', d) == 1 then
      n = 0
    elseif not write then
      return nil
    else
      -- The whole audience: while the snapshot is taken (its first
      -- shards' batches run meanwhile), as its final shards foretell it
      -- (audx, snapshot_progress.lua), not the part counted so far.
      local a = tonumber(redis.call('HGET', b, 'audx') or redis.call('HGET', b, 'audience') or '0') or 0
      n = 0
      if a >= DELIVERY_BUCKETS_FROM and a > 0 then
        n, pos = math.ceil(a / DELIVERIES_PER_BUCKET), true
        redis.call('HSET', b, 'db', 'p' .. n)
        redis.call('SET', d, 'p')
      else
        redis.call('HSET', b, 'db', 0)
      end
    end
  end
  dlayoutOf[d] = { n, pos }
  return n, pos
end

-- bucketKeys caches the key names of buckets: d -> k -> b:{id}:d:{k}.
local bucketKeys = {}

-- bucketKey is bucket i of d, b:{id}:d:{i}.
local function bucketKey(d, i)
  local keys = bucketKeys[d]
  if not keys then
    keys = {}
    bucketKeys[d] = keys
  end
  local k = keys[i]
  if not k then
    k = d .. ':' .. i
    keys[i] = k
  end
  return k
end

-- posBucket is the bucket of n positional ones that holds record f, whose
-- dpos is p (nil: computed here).
local function posBucket(f, p, n)
  return math.floor((tonumber(p) or dpos(f)) * n / 536870912)
end

-- dkey is the hash that holds (or will, with write) record f of d; nil
-- when there is none yet and not write. p is dpos(f) when the caller has
-- it (nil: computed here when needed).
-- (The last answer is kept: a record is mostly read, then written.)
local lastD, lastF, lastK = nil, nil, nil
local function dkey(d, f, write, p)
  if f == lastF and d == lastD then return lastK end
  local n, pos = dbuckets(d, write)
  if n == nil then return nil end
  local k = d
  if n > 0 then
    if pos then
      k = bucketKey(d, posBucket(f, p, n))
    else
      k = bucketKey(d, dbucket(f, n))
    end
  end
  lastD, lastF, lastK = d, f, k
  return k
end

-- A script that reads and writes many records (begin, journal, record)
-- reads them first, one HMGET a hash (dprefetch), and then writes them
-- one HSET a hash at its end (dflush, which tallied calls before it
-- writes the counters, so that both agree even when the script raises):
-- a batch's records share a few buckets, and a call to Redis costs more
-- than the record's work. Meanwhile dcache holds every record read or
-- written (field -> record, false for none), dkeyOf each one's hash,
-- dposOf each one's position, and dpending the writes to make (hash ->
-- field/record pairs, in dorder). dcache is keyed by field alone: a
-- script that prefetches reads and writes the records of one broadcast's
-- d only, and never deletes one (ddel goes straight to Redis, past
-- dcache and dpending).
local dcache, dkeyOf, dposOf, dpending, dorder = nil, nil, nil, nil, nil

-- group is by[k], a list made (and k added to order) the first time.
local function group(by, order, k)
  local g = by[k]
  if not g then
    g = {}
    by[k] = g
    order[#order + 1] = k
  end
  return g
end

-- dprefetch reads the records of d whose fields are ARGV[from],
-- ARGV[from + step], ... (each one's position ARGV[i + po]) into dcache,
-- and starts buffering writes.
local function dprefetch(d, from, step, po)
  dcache, dkeyOf, dposOf, dpending, dorder = {}, {}, {}, {}, {}
  local n, pos = dbuckets(d, false)
  local byKey, keys = {}, {}
  if n == nil then
    for i = from, #ARGV, step do
      local f = ARGV[i]
      dposOf[f] = ARGV[i + po]
      dcache[f] = false -- nothing stored yet
    end
  elseif pos then
    -- dkey's positional case, its key and group looked up only when the
    -- bucket changes (a batch's records come in the buckets' order).
    local lastI, lastK, lastG = nil, nil, nil
    for i = from, #ARGV, step do
      local f, p = ARGV[i], ARGV[i + po]
      dposOf[f] = p
      local x = posBucket(f, p, n)
      if x ~= lastI then
        lastI, lastK = x, bucketKey(d, x)
        lastG = group(byKey, keys, lastK)
      end
      dkeyOf[f] = lastK
      lastG[#lastG + 1] = f
    end
  else
    for i = from, #ARGV, step do
      local f = ARGV[i]
      dposOf[f] = ARGV[i + po]
      local k = dkey(d, f, false, ARGV[i + po])
      dkeyOf[f] = k
      local g = group(byKey, keys, k)
      g[#g + 1] = f
    end
  end
  for _, k in ipairs(keys) do
    local g = byKey[k]
    -- unpack stays far below Lua's C stack limit (8000 values).
    for j = 1, #g, 1000 do
      local vals = redis.call('HMGET', k, unpack(g, j, math.min(j + 999, #g)))
      for x = 1, #vals do dcache[g[j + x - 1]] = vals[x] end
    end
  end
end

-- dflush makes the writes dset buffered.
local function dflush()
  if not dpending then return end
  local pending, order = dpending, dorder
  dpending, dorder = {}, {}
  for _, k in ipairs(order) do
    local kv = pending[k]
    for j = 1, #kv, 2000 do
      redis.call('HSET', k, unpack(kv, j, math.min(j + 1999, #kv)))
    end
  end
end

-- dget is record f of d, or false (p: as dkey).
local function dget(d, f, p)
  if dcache then
    local v = dcache[f]
    if v ~= nil then return v end
  end
  local k = dkey(d, f, false, p)
  if not k then return false end
  return redis.call('HGET', k, f)
end

-- dset stores record v as f of d (p: as dkey), or buffers it after
-- dprefetch (a field written twice is written once, last).
local function dset(d, f, v, p)
  if not dcache then
    redis.call('HSET', dkey(d, f, true, p), f, v)
    return
  end
  local k = dkeyOf[f]
  if not k then
    k = dkey(d, f, true, p or dposOf[f])
    dkeyOf[f] = k
  end
  dcache[f] = v
  local kv = group(dpending, dorder, k)
  local m = #kv
  kv[m + 1] = f
  kv[m + 2] = v
end

-- ddel deletes record f of d, at once: not for a script that prefetched
-- (its buffered write of f, or its cached read, would outlive the delete).
local function ddel(d, f)
  if dcache then error('ddel in a script that prefetched records (dprefetch)') end
  local k = dkey(d, f, false)
  if k then redis.call('HDEL', k, f) end
end
