-- masterID is this master's replication id (INFO replication's
-- master_replid): a replica promoted in a failover takes a new one, so a
-- run that noted it when it took its lease finds it changed at its release
-- when a failover came between (acquire_lease, release_lease). '' where
-- INFO has no such line (a server that does not replicate).
local function masterID()
  local ok, info = pcall(redis.call, 'INFO', 'replication')
  if not ok or type(info) ~= 'string' then return '' end
  return string.match(info, 'master_replid:(%w+)') or ''
end
