-- Open tickets, each only if none of its players is already in `limit` open tickets of the queue
-- (whoever opened them: a player, a party's leader, a backend's API key). Several tickets may come
-- in one call (a frontend sends the creates of one event-loop iteration together); each is decided
-- on its own, in order, so two tickets of one player in one call are refused like any others.
-- ARGV: now, history, then per ticket: id, owner, limit, body (msgpack), enqueued_at,
--       expires_at ('' = never), player ids (space-separated)
-- Returns per ticket 'ok', 'exists' (the id is taken by another ticket) or, with nothing written,
-- {'open', index of the player in the ticket (0-based), the oldest open ticket listing them}.
-- The same ticket sent again (a retry after a lost reply) is 'ok' and changes nothing.
local function create(id, owner, limit, body, enqueued, expires, players)
  if redis.call('HEXISTS', K.state, id) == 1 then
    return redis.call('HGET', K.bodies, id) == body and 'ok' or 'exists'
  end
  local ids = words(players)
  for i, player in ipairs(ids) do
    local open = words(redis.call('HGET', K.by_player, player))
    if #open >= limit then return {'open', i - 1, open[1]} end
  end
  for _, player in ipairs(ids) do
    local open = redis.call('HGET', K.by_player, player)
    redis.call('HSET', K.by_player, player, open and (open .. ' ' .. id) or id)
  end
  redis.call('HSET', K.bodies, id, body)
  redis.call('HSET', K.state, id, 'queued')
  redis.call('HSET', K.enqueued, id, enqueued)
  redis.call('HSET', K.owner, id, owner)
  redis.call('HSET', K.players, id, players)
  redis.call('ZADD', K.pool, enqueued, id)
  if expires ~= '' then redis.call('ZADD', K.ttl, expires, id) end
  return 'ok'
end

local results = {}
for i = 3, #ARGV, 7 do
  results[#results + 1] = create(
    ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6])
end
return results
