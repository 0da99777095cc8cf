-- A fill given up (its server write failed or may have, or a ticket was cancelled before the
-- commit): its tickets back to the pool at their original place, and the backfill's lock set aside
-- (freed for the next fill; its players come off the server when swept, if they are there).
-- ARGV: now, history, backfill id, fill id, ticket ids...     Returns how many went back.
local id, fill, count = ARGV[3], ARGV[4], 0
if holder(id) == fill then set_aside(id) end
for i = 5, #ARGV do
  local t = ARGV[i]
  if redis.call('HGET', K.state, t) == 'leased' and redis.call('HGET', K.match, t) == fill then
    requeue(t)
    count = count + 1
  end
end
return count
