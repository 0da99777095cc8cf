-- Housekeeping, at most `batch` tickets per step:
-- 1. leases whose deadline passed: back to the pool at the original place (or expired, if the
--    ticket's TTL ran out meanwhile); a proposed match whose acceptance deadline passed: its
--    tickets that accepted back to the pool, the others cancelled (their players are not there);
-- 2. queued tickets past their TTL: expired (a leased one is left to its holder);
-- 3. orphaned matches listed for a day without a release: forgotten;
-- 4. tickets finished more than `retention` seconds ago: forgotten.
-- The match of every lease that ran out is listed in `orphans`: its director died or stalled, and
-- a server it may have allocated is to be released (matchmaker.director).
-- ARGV: now, history, retention seconds, batch, reason for expiry, reason for not accepting
-- Returns {ids returned to the pool, ids expired, matches whose leases ran out, proposed matches
-- whose acceptance deadline passed, ids cancelled for not accepting}.
local retention, batch, why, unanswered = tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local now = fmt(NOW)
local returned, expired, abandoned, seen = {}, {}, {}, {}
local timed_out, not_accepted = {}, {}

-- A proposed match past its deadline, as a whole: who accepted goes back, who did not is cancelled.
local function time_out(match_id)
  timed_out[#timed_out + 1] = match_id
  for _, m in ipairs(words(redis.call('HGET', K.members, match_id))) do
    if redis.call('HGET', K.state, m) == 'proposed' and redis.call('HGET', K.match, m) == match_id then
      if redis.call('HEXISTS', K.accepted, m) == 1 then
        requeue(m)
        announce(m, 'queued')
        returned[#returned + 1] = m
      else
        finish(m, 'cancelled', unanswered)
        not_accepted[#not_accepted + 1] = m
      end
    end
  end
  forget_match(match_id)
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.leases, '-inf', now, 'LIMIT', 0, batch)) do
  local holder = redis.call('HGET', K.match, id)
  local state = redis.call('HGET', K.state, id)
  if state == 'proposed' and not seen[holder] then
    seen[holder] = true
    time_out(holder)
  elseif state == 'leased' then  -- not a ticket its proposed match's time-out settled just now
    if holder and not seen[holder] then
      seen[holder] = true
      abandoned[#abandoned + 1] = holder
      orphan(holder)
      forget_match(holder)
    end
    local expires = redis.call('ZSCORE', K.ttl, id)
    if expires and tonumber(expires) <= NOW then
      finish(id, 'expired', why)
      expired[#expired + 1] = id
    else
      requeue(id)
      returned[#returned + 1] = id
    end
  end
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.ttl, '-inf', now, 'LIMIT', 0, batch)) do
  if redis.call('HGET', K.state, id) == 'queued' then
    finish(id, 'expired', why)
    expired[#expired + 1] = id
  end
end

-- Orphans nobody took for a day (no director releases servers here): forgotten.
local stale = redis.call('ZRANGEBYSCORE', K.orphans, '-inf', fmt(NOW - 86400), 'LIMIT', 0, batch)
if #stale > 0 then
  redis.call('ZREM', K.orphans, unpack(stale))
  redis.call('HDEL', K.orphan_tries, unpack(stale))
end

local old = redis.call('ZRANGEBYSCORE', K.done, '-inf', fmt(NOW - retention), 'LIMIT', 0, batch)
if #old > 0 then
  for _, key in ipairs({K.bodies, K.state, K.enqueued, K.owner, K.players, K.match, K.assignment, K.reason}) do
    redis.call('HDEL', key, unpack(old))
  end
  redis.call('ZREM', K.done, unpack(old))
end

return {returned, expired, abandoned, timed_out, not_accepted}
