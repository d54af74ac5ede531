-- claim_late claims late members of a broadcast (catch-up) for the runs of
-- one lease name (owner): a member goes to the first owner that claims it,
-- and only that owner's runs may decide on and send it, so two batches
-- holding the same late member (a group and a later group, or the older
-- one-member form) never both send it. A member a live run of the older
-- form holds (its lease "c:{rid}" exists) is left to that run. The
-- members owner holds are kept in its set m, which settle.lua reads
-- should its run die, and a group's ids (owner "cg:{hash}") in g, which
-- the sweeper reads to run a dead group again under the same name. Claims,
-- set and list expire ttl seconds after the last claim (a late member is
-- in its batch's run long before).
-- KEYS: claims (hash rid -> owner), m (set), g (string). ARGV: owner, lp,
-- ttl, then the recipient ids. Returns per id 1 when owner holds it, else 0.
local lc, m = KEYS[1], KEYS[2]
local owner, lp, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out, held = {}, false
for i = 4, #ARGV do
  local rid = ARGV[i]
  local single = 'c:' .. rid
  local mine = 0
  if redis.call('HSETNX', lc, rid, owner) == 1 then
    if owner ~= single and redis.call('EXISTS', lp .. single) == 1 then
      redis.call('HSET', lc, rid, single)
    else
      mine = 1
    end
  elseif redis.call('HGET', lc, rid) == owner then
    mine = 1
  end
  if mine == 1 then
    redis.call('SADD', m, rid)
    held = true
  end
  out[#out + 1] = mine
end
redis.call('EXPIRE', lc, ttl)
if string.sub(owner, 1, 3) == 'cg:' then
  redis.call('SET', KEYS[3], table.concat(ARGV, ' ', 4), 'EX', ttl)
end
if held then redis.call('EXPIRE', m, ttl) end
return out
