-- recipient.lua is what put_recipient and delete_recipient share. They
-- build the names of the index keys they touch from the prefix in ARGV[1]
-- instead of receiving them in KEYS: the old services and regions are only
-- known inside the script, once it has read the stored recipient. The
-- prefix is the recipient's shard's ("tocsin:{r:<n>}:", layout.go), so
-- every key they build is in the slot of the keys they declare, which
-- Redis Cluster accepts.
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

local function decode(raw)
  local ok, rec = pcall(cjson.decode, raw)
  if ok and type(rec) == 'table' then return rec end
  return nil
end

-- unindex removes the service, region and phone index entries of rec, the
-- decoded stored record.
local function unindex(rec)
  index('SREM', 'svc', labels(rec.services))
  index('SREM', 'reg', labels(rec.regions))
  if type(rec.phone) == 'string' and rec.phone ~= '' then
    redis.call('SREM', prefix .. 'ix:phone:' .. rec.phone, id)
  end
end
