-- Matches every ticket of which accepted, for this director to allocate, at most `limit`, oldest
-- first: each leaves `ready` (no other director takes it) and its leases are renewed for `lease
-- seconds` (if this director dies, they run out as any lease does: reap.lua). A match that lost a
-- ticket meanwhile (cancelled, or its lease ran out) is dropped: the others back to the pool.
-- ARGV: now, history, limit, lease seconds
-- Returns {match id, proposal (msgpack), match id, proposal, ...}.
local limit, deadline = tonumber(ARGV[3]), fmt(NOW + tonumber(ARGV[4]))
local out = {}
for _, match_id in ipairs(redis.call('ZRANGE', K.ready, 0, limit - 1)) do
  redis.call('ZREM', K.ready, match_id)
  local ids = words(redis.call('HGET', K.members, match_id))
  local doc = redis.call('HGET', K.proposals, match_id)
  local whole = doc and #ids > 0
  for _, id in ipairs(ids) do
    if redis.call('HGET', K.state, id) ~= 'leased' or redis.call('HGET', K.match, id) ~= match_id then
      whole = false
    end
  end
  if whole then
    for _, id in ipairs(ids) do redis.call('ZADD', K.leases, deadline, id) end
    out[#out + 1] = match_id
    out[#out + 1] = doc
  else
    for _, id in ipairs(ids) do
      if redis.call('HGET', K.state, id) == 'leased' and redis.call('HGET', K.match, id) == match_id then
        requeue(id)
        announce(id, 'queued')
      end
    end
    forget_match(match_id)
  end
end
return out
