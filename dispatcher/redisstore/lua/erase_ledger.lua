-- erase_ledger pseudonymises one recipient in one broadcast's evidence
-- ledger (GDPR erasure): its delivery records {channel}.{id} in d (in its
-- buckets, dkeys.lua: the pseudonym's record may land in another) and the
-- earlier attempts {channel}.{id}#{n} in x move to {channel}.{pseudonym},
-- unchanged otherwise (status, times, provider id, text hash: counters do
-- not move); the texts kept in t for them lose the text, keeping its
-- SHA-256, when drop_all is '1' (every text of a subscriber carries its
-- own links) or when the text contains one of the personal values. It
-- returns how many delivery records it moved.
-- KEYS: d, x, t. ARGV: id, pseudonym, drop_all, n, n channels, then the
-- personal values.
local d, x, t = KEYS[1], KEYS[2], KEYS[3]
local id, ps, dropAll, n = ARGV[1], ARGV[2], ARGV[3] == '1', tonumber(ARGV[4])

local B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

-- b64 is the value of base64url character c.
local function b64(r, i)
  return (string.find(B64, string.sub(r, i, i), 1, true) or 1) - 1
end

-- refHex turns a text ref of 11 base64url characters (8 bytes) into the
-- 16 hex digits that key t: 3 hex digits per pair of characters, then the
-- top 4 of the last character's 6 bits.
local function refHex(r)
  local out = ''
  for i = 1, 9, 2 do out = out .. string.format('%03x', b64(r, i) * 64 + b64(r, i + 1)) end
  return out .. string.format('%x', math.floor(b64(r, 11) / 4))
end

-- textRef is the text ref in field 4 of record v (",T{base64url}", or
-- ",t{hex}" as older records have it) in hex, or nil.
local function textRef(v)
  local pos = 1
  for _ = 1, 3 do
    pos = string.find(v, '|', pos, true)
    if not pos then return nil end
    pos = pos + 1
  end
  local stop = string.find(v, '|', pos, true)
  if not stop then return nil end
  local loc = string.sub(v, pos, stop - 1)
  local packed = string.match(loc, ',T([%w%-_]+)')
  if packed and #packed == 11 then return refHex(packed) end
  return string.match(loc, ',t(%x+)')
end

local function dropText(ref)
  local tv = redis.call('HGET', t, ref)
  if not tv then return end
  local nl = string.find(tv, '\n', 1, true)
  if not nl then return end -- no text kept
  local drop = dropAll
  if not drop then
    local text = string.sub(tv, nl + 1)
    for j = 5 + n, #ARGV do
      if string.find(text, ARGV[j], 1, true) then
        drop = true
        break
      end
    end
  end
  if drop then redis.call('HSET', t, ref, string.sub(tv, 1, nl - 1)) end
end

local moved = 0
for i = 5, 4 + n do
  local f, nf = ARGV[i] .. '.' .. id, ARGV[i] .. '.' .. ps
  local v = dget(d, f)
  if v then
    ddel(d, f)
    dset(d, nf, v)
    moved = moved + 1
    local ref = textRef(v)
    if ref then dropText(ref) end
    local attempts = tonumber(string.match(v, '^.|(%d+)|')) or 0
    for k = 1, attempts do
      local xv = redis.call('HGET', x, f .. '#' .. k)
      if xv then
        redis.call('HSET', x, nf .. '#' .. k, xv)
        redis.call('HDEL', x, f .. '#' .. k)
        local xref = textRef(xv)
        if xref then dropText(xref) end
      end
    end
  end
end
return moved
