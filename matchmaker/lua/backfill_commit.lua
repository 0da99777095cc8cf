-- All or nothing: if `fill` holds the backfill's lock and every ticket's lease, store the
-- assignments, mark the tickets matched (announced), take the slots they fill, and free the lock;
-- the backfill is filled once no slot is left. A retry after a lost reply returns 1 again.
-- ARGV: now, history, backfill id, fill id, game server, taken per team ('1 0'), then pairs: ticket id, assignment
local id, fill, taken = ARGV[3], ARGV[4], words(ARGV[6])
local held, repeated = true, true
for i = 7, #ARGV, 2 do
  local t = ARGV[i]
  local state, by = redis.call('HGET', K.state, t), redis.call('HGET', K.match, t)
  if by ~= fill then return 0 end
  if state ~= 'matched' then repeated = false end
  if state ~= 'leased' or tonumber(redis.call('ZSCORE', K.leases, t)) <= NOW then held = false end
end
if repeated then return 1 end
if not held or holder(id) ~= fill or redis.call('HGET', B.bstate, id) ~= 'open' then return 0 end
local n = 0
for i = 7, #ARGV, 2 do
  redis.call('HSET', K.assignment, ARGV[i], ARGV[i + 1])
  finish(ARGV[i], 'matched', '')
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
if left == 0 then close(id, 'filled', ARGV[5]) end
return 1
