-- Open a backfill for a game server, or update the open one it has (one per server): its wanted
-- slots become `slots`. Slots all zero close an open one (as `closing`: filled, or cancelled when
-- its match is over) and open nothing.
-- ARGV: now, history, id, doc (msgpack), slots ('1 0'), game server, closing
-- An open one with a fill in flight is left alone ('busy'): the fill's commit takes its slots.
-- Returns {'opened' | 'updated' | 'closed' | 'busy' | 'none', id}.
local id, doc, slots, server = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local wanted = 0
for _, n in ipairs(words(slots)) do wanted = wanted + tonumber(n) end
local current = redis.call('HGET', B.by_server, server)
if current and redis.call('HGET', B.bstate, current) == 'open' then
  if holder(current) then return {'busy', current} end
  if wanted == 0 then
    close(current, ARGV[7], server)
    return {'closed', current}
  end
  redis.call('HSET', B.slots, current, slots)
  return {'updated', current}
end
if wanted == 0 then return {'none', ''} end
if redis.call('HEXISTS', B.docs, id) == 1 then return {'opened', id} end  -- a retry
redis.call('HSET', B.docs, id, doc)
redis.call('HSET', B.slots, id, slots)
redis.call('HSET', B.bstate, id, 'open')
redis.call('HSET', B.filled, id, 0)
redis.call('ZADD', B.open, fmt(NOW), id)
redis.call('HSET', B.by_server, server, id)
return {'opened', id}
