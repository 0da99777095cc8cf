-- All or nothing: if `fill` holds the backfill's lock and every ticket's lease, store the
-- assignments, mark the tickets matched into `match` (announced), take the slots they fill, and
-- free the lock; the backfill is filled once no slot is left. A retry after a lost reply returns 1
-- again (the fill is among the backfill's commits) and changes nothing more.
-- ARGV: now, history, backfill id, fill id, game server, match id, taken per team ('1 0'), then
-- pairs: ticket id, assignment
local id, fill, server, match_id, taken = ARGV[3], ARGV[4], ARGV[5], ARGV[6], words(ARGV[7])
local commits = words(redis.call('HGET', B.commits, id))
for _, done in ipairs(commits) do
  if done == fill then return 1 end
end
for i = 8, #ARGV, 2 do
  local t = ARGV[i]
  if redis.call('HGET', K.state, t) ~= 'leased' or redis.call('HGET', K.match, t) ~= fill
     or tonumber(redis.call('ZSCORE', K.leases, t)) <= NOW then
    return 0
  end
end
if holder(id) ~= fill or redis.call('HGET', B.bstate, id) ~= 'open' then return 0 end
local n = 0
for i = 8, #ARGV, 2 do
  redis.call('HSET', K.assignment, ARGV[i], ARGV[i + 1])
  finish(ARGV[i], 'matched', '')
  redis.call('HSET', K.match, ARGV[i], match_id)
end
local slots, left = words(redis.call('HGET', B.slots, id)), 0
for i = 1, #slots do
  local rest = math.max(0, tonumber(slots[i]) - tonumber(taken[i] or '0'))
  n = n + tonumber(taken[i] or '0')
  slots[i] = tostring(rest)
  left = left + rest
end
redis.call('HSET', B.slots, id, table.concat(slots, ' '))
redis.call('HINCRBY', B.filled, id, n)
redis.call('HDEL', B.lock, id)
commits[#commits + 1] = fill
while #commits > COMMITS_KEPT do table.remove(commits, 1) end
redis.call('HSET', B.commits, id, table.concat(commits, ' '))
if left == 0 then close(id, 'filled', server) end
return 1
