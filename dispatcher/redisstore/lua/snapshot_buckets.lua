-- snapshot_buckets reads one bounded chunk of a shard's whole audience
-- (every recipient: a broadcast to all) from its record buckets (layout.go):
-- the ids of the buckets from a cursor, a bucket at a time, until chunk ids
-- or the last bucket. The cursor is the bucket to start at: a position
-- that no failover or rehash moves, unlike a SSCAN cursor.
-- KEYS: the shard's bucket 0 (the slot every bucket key, built from the
-- prefix, is in).
-- ARGV: the shard's prefix ("tocsin:{r:<n>}:"), cursor, chunk, buckets.
-- Returns snapshot_step's shape: {next cursor ('0' at the end), ids read,
-- the ids, ''} ('': no server to check, the cursor is good on any).
local b, chunk, nb = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
while b < nb and #out < chunk do
  local ids = redis.call('HKEYS', ARGV[1] .. 'rb:' .. string.format('%d', b))
  for i = 1, #ids do out[#out + 1] = ids[i] end
  b = b + 1
end
if b >= nb then b = 0 end
return {string.format('%d', b), #out, out, ''}
