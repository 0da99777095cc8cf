-- All or nothing: if `match_id` holds every ticket's lease and no lease has run out, store the
-- assignments, mark the tickets matched and announce them.
-- ARGV: now, history, match_id, then pairs: ticket id, assignment (msgpack)
-- Returns 1 (all matched) or 0 (nothing changed). Tickets all matched into `match_id` already
-- (a retry after a lost reply) return 1 again, without a second announcement.
local match_id = ARGV[3]
local held, repeated = true, true
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  local state, holder = redis.call('HGET', K.state, id), redis.call('HGET', K.match, id)
  if holder ~= match_id then return 0 end
  if state ~= 'matched' then repeated = false end
  if state ~= 'leased' or tonumber(redis.call('ZSCORE', K.leases, id)) <= NOW then held = false end
end
if repeated then return 1 end
if not held then return 0 end
for i = 4, #ARGV, 2 do
  redis.call('HSET', K.assignment, ARGV[i], ARGV[i + 1])
  finish(ARGV[i], 'matched', '')
end
forget_match(match_id)
return 1
