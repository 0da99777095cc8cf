-- Housekeeping, at most `batch` tickets per step:
-- 1. leases whose deadline passed: back to the pool at the original place (or expired, if the
--    ticket's TTL ran out meanwhile);
-- 2. queued tickets past their TTL: expired (a leased one is left to its holder);
-- 3. tickets finished more than `retention` seconds ago: forgotten.
-- ARGV: now, history, retention seconds, batch, reason for expiry
-- Returns {ids returned to the pool, ids expired}.
local retention, batch, why = tonumber(ARGV[3]), ARGV[4], ARGV[5]
local now = fmt(NOW)
local returned, expired = {}, {}

for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.leases, '-inf', now, 'LIMIT', 0, batch)) do
  local expires = redis.call('ZSCORE', K.ttl, id)
  if expires and tonumber(expires) <= NOW then
    finish(id, 'expired', why)
    expired[#expired + 1] = id
  else
    requeue(id)
    returned[#returned + 1] = id
  end
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.ttl, '-inf', now, 'LIMIT', 0, batch)) do
  if redis.call('HGET', K.state, id) == 'queued' then
    finish(id, 'expired', why)
    expired[#expired + 1] = id
  end
end

local old = redis.call('ZRANGEBYSCORE', K.done, '-inf', fmt(NOW - retention), 'LIMIT', 0, batch)
if #old > 0 then
  for _, key in ipairs({K.bodies, K.state, K.enqueued, K.owner, K.players, K.match, K.assignment, K.reason}) do
    redis.call('HDEL', key, unpack(old))
  end
  redis.call('ZREM', K.done, unpack(old))
end

return {returned, expired}
