-- audience_has tells whether a broadcast's snapshot holds recipient id: 1
-- or 0. h is audHash of the id; its chunk is floor(h × chunks / 2^29), as
-- audChunk computes it (snapshot.go; see prelude.lua, which lua.go
-- prepends).
-- KEYS: aud. ARGV: id, h.
local aud = KEYS[1]
local c = audChunks(aud)
if c > 0 then
  aud = aud .. ':' .. math.floor(tonumber(ARGV[2]) * c / 536870912)
end
if redis.call('ZSCORE', aud, ARGV[1]) then return 1 end
return 0
