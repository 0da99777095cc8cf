-- All or nothing: if every ticket is queued, lease them all to `match_id` until now + seconds.
-- Tickets already leased by `match_id` count as queued: claiming again renews the lease, and a
-- retry after a lost reply succeeds as the first call did.
-- The last line of defence against a match function (a plug-in, an older director) that puts one
-- player in two tickets of a match: such a claim changes nothing and names the player.
-- ARGV: now, history, match_id, lease seconds, ticket ids...
-- Returns 1 (all leased), 0 (nothing changed: some ticket is leased by another match, finished
-- or unknown) or {'player', id} (nothing changed: that player is in two of the tickets).
local match_id, deadline = ARGV[3], fmt(NOW + tonumber(ARGV[4]))
for i = 5, #ARGV do
  local state = redis.call('HGET', K.state, ARGV[i])
  if state ~= 'queued' and not (state == 'leased' and redis.call('HGET', K.match, ARGV[i]) == match_id) then
    return 0
  end
end
local seen = {}
for i = 5, #ARGV do
  for _, player in ipairs(words(redis.call('HGET', K.players, ARGV[i]))) do
    if seen[player] then return {'player', player} end
    seen[player] = true
  end
end
for i = 5, #ARGV do
  local id = ARGV[i]
  redis.call('HSET', K.state, id, 'leased')
  redis.call('HSET', K.match, id, match_id)
  redis.call('ZREM', K.pool, id)
  redis.call('ZADD', K.leases, deadline, id)
end
return 1
