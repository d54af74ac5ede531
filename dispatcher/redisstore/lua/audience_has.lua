-- audience_has tells whether a broadcast's snapshot holds recipient id: 1
-- or 0. h is crc32 of the id (the chunk is h % chunks, see prelude.lua,
-- which lua.go prepends).
-- KEYS: aud. ARGV: id, h.
local aud = KEYS[1]
local c = audChunks(aud)
if c > 0 then
  aud = aud .. ':' .. (tonumber(ARGV[2]) % c)
end
if redis.call('ZSCORE', aud, ARGV[1]) then return 1 end
return 0
