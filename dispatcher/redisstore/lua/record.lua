-- record applies outcomes (see apply); pending drops when a delivery
-- becomes final. It returns how many it applied.
-- The outcomes' evidence (see evidence) comes first.
-- KEYS: b, d, aud, texts, attempts. ARGV: now, evidence,
-- field/record/position triples (see apply).
local b, d, aud, now = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local fin, applied = 0, 0
local from = evidence(KEYS[4], KEYS[5], 2)
dprefetch(d, from, 3, 2)
tallied(b, function()
  for i = from, #ARGV, 3 do
    local a, x = apply(b, d, ARGV[i], ARGV[i + 1], ARGV[i + 2])
    applied, fin = applied + a, fin + x
  end
end, function() settled(b, aud, now, fin) end)
return applied
