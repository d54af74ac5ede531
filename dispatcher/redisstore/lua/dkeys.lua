-- dkeys.lua: where a broadcast's delivery records live (deliveries.go,
-- "Delivery buckets"). Record {channel}.{recipient} of broadcast id is
-- field {channel}.{recipient} of bucket hash b:{id}:d:{k}, k =
-- dbucket(field, n), where n is the broadcast's bucket count, field db of
-- b:{id}, fixed by the first record written: from an audience of
-- DELIVERY_BUCKETS_FROM on, the audience over DELIVERIES_PER_BUCKET, so
-- that a bucket stays small (a listpack when its values fit
-- hash-max-listpack-value); below it 0. A broadcast
-- whose records were written before the buckets (no db, and b:{id}:d
-- exists) keeps the one hash b:{id}:d (n = 0). Scripts name d = b:{id}:d
-- (KEYS); the buckets share its hash tag, so its slot.
local DELIVERIES_PER_BUCKET = 128

-- DELIVERY_BUCKETS_FROM is the least audience whose records go to
-- buckets; a smaller broadcast keeps the one hash b:{id}:d (n = 0). The
-- buckets cost 25-30% of deliveries/s at 1M (docs/BENCHMARKS.md), and a
-- hash this small neither grows its table in one long call (a table of
-- 4M slots is 32 MB, allocated at once) nor costs much more memory.
local DELIVERY_BUCKETS_FROM = 4000000

-- dbucket is the bucket of field f ("{channel}.{recipient}") of n: a
-- 32-bit polynomial hash (31) of the recipient, mod n; deliveryBucket in
-- deliveries.go is the same.
local function dbucket(f, n)
  local h = 0
  for i = (string.find(f, '.', 1, true) or 0) + 1, #f do
    h = (h * 31 + string.byte(f, i)) % 4294967296
  end
  return h % n
end

local dbucketsOf = {}

-- dbuckets returns the bucket count of deliveries d (0: the one hash d),
-- or nil when none is fixed and nothing stored yet, unless write, which
-- fixes it (HSET b db).
local function dbuckets(d, write)
  local n = dbucketsOf[d]
  if n then return n end
  local b = string.sub(d, 1, -3) -- b:{id}:d -> b:{id}
  n = tonumber(redis.call('HGET', b, 'db') or '')
  if not n then
    if redis.call('EXISTS', d) == 1 then
      n = 0
    elseif not write then
      return nil
    else
      local a = tonumber(redis.call('HGET', b, 'audience') or '0') or 0
      n = 0
      if a >= DELIVERY_BUCKETS_FROM then
        n = math.ceil(a / DELIVERIES_PER_BUCKET)
      end
      redis.call('HSET', b, 'db', n)
    end
  end
  dbucketsOf[d] = n
  return n
end

-- dkey is the hash that holds (or will, with write) record f of d; nil
-- when there is none yet and not write.
-- (The last answer is kept: a record is mostly read, then written.)
local lastD, lastF, lastK = nil, nil, nil
local function dkey(d, f, write)
  if f == lastF and d == lastD then return lastK end
  local n = dbuckets(d, write)
  if n == nil then return nil end
  local k = d
  if n > 0 then k = d .. ':' .. dbucket(f, n) end
  lastD, lastF, lastK = d, f, k
  return k
end

-- dget is record f of d, or false.
local function dget(d, f)
  local k = dkey(d, f, false)
  if not k then return false end
  return redis.call('HGET', k, f)
end

-- dset stores record v as f of d.
local function dset(d, f, v)
  redis.call('HSET', dkey(d, f, true), f, v)
end

-- ddel deletes record f of d.
local function ddel(d, f)
  local k = dkey(d, f, false)
  if k then redis.call('HDEL', k, f) end
end
