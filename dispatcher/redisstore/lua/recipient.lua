-- recipient.lua is what put_recipient and delete_recipient share. They
-- build the names of the index keys they touch from the prefix in ARGV[1]
-- instead of receiving them in KEYS: the old services and regions are only
-- known inside the script, once it has read the stored recipient. The
-- prefix is the recipient's shard's ("tocsin:{r:<n>}:", layout.go), so
-- every key they build is in the slot of the keys they declare, which
-- Redis Cluster accepts.
--
-- A stored record is packed (recipient_record.go: its first byte is \1,
-- then "{phone}|{services}|{regions}|{opt-outs}|" and a binary rest these
-- scripts never read) or, written by an older Tocsin, JSON. decode reads
-- the head of either.
--
-- cjson differs between Redis and miniredis: a JSON null decodes to
-- cjson.null (Redis) or nil (miniredis), an invalid document raises (Redis)
-- or returns nil (miniredis), and an empty array is indistinguishable from
-- an empty object. labels() therefore accepts only tables and keeps only
-- their string items, and an absent, null or empty list all mean "every
-- service" or "every region" (the "*" index).
local prefix, id = ARGV[1], ARGV[2]

local function labels(v)
  local out = {}
  if type(v) == 'table' then
    for _, s in ipairs(v) do
      if type(s) == 'string' then out[#out + 1] = s end
    end
  end
  return out
end

local function index(cmd, kind, list)
  if #list == 0 then
    redis.call(cmd, prefix .. 'ix:' .. kind .. ':*', id)
    return
  end
  for _, s in ipairs(list) do
    redis.call(cmd, prefix .. 'ix:' .. kind .. ':' .. s, id)
  end
end

-- commaList splits "a,b" into {"a", "b"} ("" into {}).
local function commaList(s)
  local out = {}
  for item in string.gmatch(s, '[^,]+') do out[#out + 1] = item end
  return out
end

-- decode returns the phone, services, regions and opt_out of a stored
-- record, packed or JSON, or nil when it is neither. A packed record's
-- table also holds head, where its opt-out field starts, and tail, where
-- its rest starts.
local function decode(raw)
  if string.byte(raw, 1) == 1 then
    local parts, pos = {}, 2
    for n = 1, 4 do
      local i = string.find(raw, '|', pos, true)
      if not i then return nil end
      parts[n] = string.sub(raw, pos, i - 1)
      if n == 4 then return {phone = parts[1], services = commaList(parts[2]), regions = commaList(parts[3]), opt_out = commaList(parts[4]), head = pos, tail = i} end
      pos = i + 1
    end
  end
  local ok, rec = pcall(cjson.decode, raw)
  if ok and type(rec) == 'table' then return rec end
  return nil
end

-- withOptOut returns the new record raw (whose opt-out list is empty)
-- carrying the opt-out list optout.
local function withOptOut(raw, optout)
  local rec = decode(raw)
  if rec and rec.head then
    return string.sub(raw, 1, rec.head - 1) .. table.concat(optout, ',') .. string.sub(raw, rec.tail)
  end
  return string.sub(raw, 1, -2) .. ',"opt_out":' .. cjson.encode(optout) .. '}'
end

-- The phone index: hash ix:tel:{bucket}, field the number, value the ids
-- of its recipients joined by commas (ids never hold one). The bucket is
-- the number the digits ending the last four characters make (0 for
-- none), modulo 512 (phoneIndexKey and phoneBucket in recipients.go name
-- the same keys).
local function phoneKey(phone)
  local d = tonumber(string.match(string.sub(phone, -4), '%d*$')) or 0
  return prefix .. 'ix:tel:' .. string.format('%d', d % 512)
end

-- phoneAdd adds recipient rid to the index of phone.
local function phoneAdd(phone, rid)
  local k = phoneKey(phone)
  local cur = redis.call('HGET', k, phone)
  if not cur or cur == '' then
    redis.call('HSET', k, phone, rid)
    return
  end
  for _, other in ipairs(commaList(cur)) do
    if other == rid then return end
  end
  redis.call('HSET', k, phone, cur .. ',' .. rid)
end

local function phoneRemove(phone)
  local k = phoneKey(phone)
  local cur = redis.call('HGET', k, phone)
  if cur then
    local kept = {}
    for _, other in ipairs(commaList(cur)) do
      if other ~= id then kept[#kept + 1] = other end
    end
    if #kept == 0 then
      redis.call('HDEL', k, phone)
    else
      redis.call('HSET', k, phone, table.concat(kept, ','))
    end
  end
end

-- unindex removes the service, region and phone index entries of rec, the
-- decoded stored record.
local function unindex(rec)
  index('SREM', 'svc', labels(rec.services))
  index('SREM', 'reg', labels(rec.regions))
  if type(rec.phone) == 'string' and rec.phone ~= '' then phoneRemove(rec.phone) end
end
