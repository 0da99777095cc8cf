-- Open tickets, each only if its owner has fewer than `limit` open tickets in the queue. Several
-- tickets may come in one call (a frontend sends the creates of one event-loop iteration together);
-- each is decided on its own, in order.
-- ARGV: now, history, then per ticket: id, owner, limit, body (msgpack), enqueued_at, expires_at ('' = never)
-- Returns per ticket 'ok', 'exists' (the id is taken by another ticket) or 'limit' (nothing written).
-- The same ticket sent again (a retry after a lost reply) is 'ok' and changes nothing.
local function create(id, owner, limit, body, enqueued, expires)
  if redis.call('HEXISTS', K.state, id) == 1 then
    return redis.call('HGET', K.bodies, id) == body and 'ok' or 'exists'
  end
  if (tonumber(redis.call('HGET', K.open, owner)) or 0) >= limit then return 'limit' end
  redis.call('HINCRBY', K.open, owner, 1)
  redis.call('HSET', K.bodies, id, body)
  redis.call('HSET', K.state, id, 'queued')
  redis.call('HSET', K.enqueued, id, enqueued)
  redis.call('HSET', K.owner, id, owner)
  redis.call('ZADD', K.pool, enqueued, id)
  if expires ~= '' then redis.call('ZADD', K.ttl, expires, id) end
  return 'ok'
end

local results = {}
for i = 3, #ARGV, 6 do
  results[#results + 1] = create(ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3], ARGV[i + 4], ARGV[i + 5])
end
return results
