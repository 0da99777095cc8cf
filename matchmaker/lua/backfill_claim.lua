-- All or nothing: if the backfill is open with no fill in flight and every ticket is queued, lease
-- the tickets to `fill` (as a claim leases them to a match: a lease that runs out returns them
-- to the pool) and lock the backfill for it until the same deadline.
-- ARGV: now, history, backfill id, fill id, lease seconds, ticket ids...
-- Returns 1 (leased and locked), 0 (nothing changed) or {'player', id} (a player in two tickets).
local id, fill = ARGV[3], ARGV[4]
local deadline = fmt(NOW + tonumber(ARGV[5]))
if redis.call('HGET', B.bstate, id) ~= 'open' then return 0 end
local held = holder(id)
if held and held ~= fill then return 0 end
if not held then set_aside(id) end  -- a lapsed fill: its players come off the server when swept
for i = 6, #ARGV do
  local state = redis.call('HGET', K.state, ARGV[i])
  if state ~= 'queued' and not (state == 'leased' and redis.call('HGET', K.match, ARGV[i]) == fill) then
    return 0
  end
end
local seen = {}
for i = 6, #ARGV do
  for _, player in ipairs(words(redis.call('HGET', K.players, ARGV[i]))) do
    if seen[player] then return {'player', player} end
    seen[player] = true
  end
end
for i = 6, #ARGV do
  local t = ARGV[i]
  redis.call('HSET', K.state, t, 'leased')
  redis.call('HSET', K.match, t, fill)
  redis.call('ZREM', K.pool, t)
  redis.call('ZADD', K.leases, deadline, t)
end
local lock = {fill, deadline}
for player in pairs(seen) do lock[#lock + 1] = player end
redis.call('HSET', B.lock, id, table.concat(lock, ' '))
return 1
