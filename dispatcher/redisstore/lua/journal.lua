-- journal is a running batch's progress in one call: it adds the nh fields
-- to the run's handed set h (they are about to go to a provider) provided
-- the run still holds its lease and the guard lets them start, and
-- otherwise adds nothing and returns why not; then it applies the
-- outcomes, as record does (with their evidence first, see evidence).
-- KEYS: b, d, aud, incseq, lease, h, texts, attempts.
-- ARGV: now, seq, token ('' without a lease), nh, nh fields, evidence, then
-- field/record pairs.
local b, d, aud, incseq, lease, h, now = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[1]
local token, nh = ARGV[3], tonumber(ARGV[4])
local refused = ''
if nh > 0 then
  if token ~= '' and redis.call('GET', lease) ~= token then
    refused = 'lease_lost'
  else
    refused = guard(b, incseq, tonumber(ARGV[2])) or ''
  end
  if refused == '' and token ~= '' then
    for i = 5, 4 + nh, 1000 do
      redis.call('SADD', h, unpack(ARGV, i, math.min(i + 999, 4 + nh)))
    end
    redis.call('EXPIRE', h, 86400)
  end
end
local fin = 0
for i = evidence(KEYS[7], KEYS[8], 5 + nh), #ARGV, 2 do
  local _, x = apply(b, d, ARGV[i], ARGV[i + 1])
  fin = fin + x
end
settled(b, aud, now, fin)
return refused
