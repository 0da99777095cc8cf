-- Open a ticket, if its owner has fewer than `limit` open tickets in the queue.
-- ARGV: now, history, id, owner, limit, body (msgpack), enqueued_at, expires_at ('' = never)
-- Returns 'ok', 'exists' (the id is taken by another ticket) or 'limit' (nothing written).
-- The same ticket sent again (a retry after a lost reply) is 'ok' and changes nothing.
local id, owner, limit, body, enqueued, expires = ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
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
