-- Tickets leased by `match_id` back to the pool at their original place; others are skipped
-- (cancelled meanwhile, or the lease already expired and passed on).
-- ARGV: now, history, match_id, ticket ids...     Returns how many went back.
local match_id, count = ARGV[3], 0
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', K.state, id) == 'leased' and redis.call('HGET', K.match, id) == match_id then
    requeue(id)
    count = count + 1
  end
end
return count
