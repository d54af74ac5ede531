-- snapshot_buckets reads one bounded chunk of a shard's audience from its
-- record buckets (layout.go): the ids of the buckets from a cursor, a
-- bucket at a time, until chunk ids or the last bucket. The cursor is the
-- bucket to start at: a position that no failover or rehash moves, unlike
-- a SSCAN cursor. Every recipient matches (a broadcast to all), or, with
-- the sets of a side or two, those in one set of each side: a side of a
-- set that holds every recipient of the shard now (cover.lua's covers;
-- audienceSides saw both sides do so when it sized the audience) asks
-- nothing, another each of the ids (cover.lua's within).
-- KEYS: the shard's bucket 0 (the slot every bucket key, built from the
-- prefix, is in), then the sets of the first side (nfirst of them), then
-- those of the second.
-- ARGV: the shard's prefix ("tocsin:{r:<n>}:"), cursor, chunk, buckets,
-- nfirst.
-- Returns snapshot_step's shape: {next cursor ('0' at the end), ids read,
-- the matching ids, ''} ('': no server to check, the cursor is good on
-- any).
local b, chunk, nb = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local nfirst = tonumber(ARGV[5] or '0')
local out = {}
while b < nb and #out < chunk do
  local ids = redis.call('HKEYS', ARGV[1] .. 'rb:' .. string.format('%d', b))
  for i = 1, #ids do out[#out + 1] = ids[i] end
  b = b + 1
end
if b >= nb then b = 0 end
local read = #out
for _, side in ipairs({ { 2, 1 + nfirst }, { 2 + nfirst, #KEYS } }) do
  if side[1] <= side[2] and #out > 0 and not covers(ARGV[1], nb, side[1], side[2]) then
    out = within(out, side[1], side[2])
  end
end
return {string.format('%d', b), read, out, ''}
