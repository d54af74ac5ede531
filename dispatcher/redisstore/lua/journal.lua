-- journal is the progress of one or more running batches of a broadcast in
-- one call (a worker's runs of it share their writes, see
-- dispatcher.JournalStore). For each group (a run) it adds the group's nh
-- fields to the run's handed set h (they are about to go to a provider)
-- provided the run still holds its lease and the guard lets them start,
-- and otherwise adds nothing and notes why not; then it applies the
-- outcomes of all the groups, as record does (with their evidence first,
-- see evidence). It returns each group's refusal ('' for none), in order.
-- Each group's count of the call's outcomes that are its run's (no) is
-- added to its run's outcome count, lease..':o:'..token (whatever the
-- refusal: the outcomes are applied all the same), which release_lease
-- compares with what the run wrote.
-- KEYS: b, d, aud, incseq, texts, attempts, then lease and h of each group.
-- ARGV: now, ng, then for each group token ('' without a lease), seq, nh,
-- no and the nh fields; then evidence, then field/record/position triples
-- (see apply).
local b, d, aud, incseq, now = KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1]
local ng = tonumber(ARGV[2])
local refusals, guards = {}, {}
local i = 3
for g = 1, ng do
  local lease, h = KEYS[5 + 2 * g], KEYS[6 + 2 * g]
  local token, seq, nh, no = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local first = i + 4
  if no > 0 and token ~= '' then
    local count = lease .. ':o:' .. token
    redis.call('INCRBY', count, no)
    redis.call('EXPIRE', count, 86400)
  end
  local refused = ''
  if nh > 0 then
    if token ~= '' and redis.call('GET', lease) ~= token then
      refused = 'lease_lost'
    else
      if guards[seq] == nil then guards[seq] = guard(b, incseq, seq) or '' end
      refused = guards[seq]
    end
    if refused == '' and token ~= '' then
      for j = first, first + nh - 1, 1000 do
        redis.call('SADD', h, unpack(ARGV, j, math.min(j + 999, first + nh - 1)))
      end
      redis.call('EXPIRE', h, 86400)
    end
  end
  refusals[g] = refused
  i = first + nh
end
local fin = 0
local from = evidence(KEYS[5], KEYS[6], i)
dprefetch(d, from, 3, 2)
tallied(b, function()
  for j = from, #ARGV, 3 do
    local _, x = apply(b, d, ARGV[j], ARGV[j + 1], ARGV[j + 2])
    fin = fin + x
  end
end, function() settled(b, aud, now, fin) end)
return refusals
