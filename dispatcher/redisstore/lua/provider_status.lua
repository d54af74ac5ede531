-- provider_status applies a provider's later word on one delivery (a
-- delivery receipt): the same rule (canMove) and counter moves as record,
-- but it patches the record, keeping attempts, locale and SMS fields, and
-- the provider id and reason unless new ones are given. It returns -1 when
-- there is no such delivery, 0 when the change is refused (late or
-- repeated, or about another message than the one on record: the stored
-- provider id differs), 1 when applied. An unknown delivery (in flight
-- when its worker stopped) takes the provider's word too.
-- KEYS: b, d, aud. ARGV: now, field, new code, provider id (packed as
-- the record keeps it: packProviderID), reason.
local b, d, aud, now = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local f, new, pid, why = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local old = dget(d, f)
if not old then return -1 end
local oc = string.sub(old, 1, 1)
if not canMove(oc, new) then return 0 end
local p = split(old)
if not p then return redis.error_reply('ERR tocsin: corrupt delivery record ' .. f) end
if pid ~= '' and p[5] ~= '' and p[5] ~= pid then return 0 end
if pid ~= '' then p[5] = pid end
if why ~= '' then p[7] = why end
p[1], p[3] = new, stamp(p[4], now)
settled(b, aud, now, move(b, d, f, oc, table.concat(p, '|')))
return 1
