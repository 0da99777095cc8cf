-- A queue with acceptance: all or nothing, as claim.lua, every ticket queued -> proposed to
-- `match_id` until now + seconds (the acceptance deadline, its score in `leases`: a director that
-- dies meanwhile leaves it to any other's reap). The match's proposal (msgpack, for the director
-- that allocates it and for the clients) goes in `proposals`, its tickets in `members`, and each
-- ticket is announced: its players are asked to accept.
-- ARGV: now, history, match_id, timeout seconds, proposal (msgpack), ticket ids...
-- Returns 1 (all proposed), 0 (nothing changed) or {'player', id} (that player is in two of the
-- tickets). A retry after a lost reply (every ticket proposed to `match_id` already) returns 1.
local match_id, deadline = ARGV[3], fmt(NOW + tonumber(ARGV[4]))
local repeated = true
for i = 6, #ARGV do
  local state = redis.call('HGET', K.state, ARGV[i])
  if state == 'proposed' and redis.call('HGET', K.match, ARGV[i]) == match_id then
    -- proposed to this match already
  elseif state == 'queued' then
    repeated = false
  else
    return 0
  end
end
if repeated then return 1 end
local seen, ids = {}, {}
for i = 6, #ARGV do
  for _, player in ipairs(words(redis.call('HGET', K.players, ARGV[i]))) do
    if seen[player] then return {'player', player} end
    seen[player] = true
  end
  ids[#ids + 1] = ARGV[i]
end
redis.call('HSET', K.members, match_id, table.concat(ids, ' '))
redis.call('HSET', K.proposals, match_id, ARGV[5])
for _, id in ipairs(ids) do
  redis.call('HSET', K.state, id, 'proposed')
  redis.call('HSET', K.match, id, match_id)
  redis.call('ZREM', K.pool, id)
  redis.call('ZADD', K.leases, deadline, id)
  announce(id, 'proposed')
end
return 1
