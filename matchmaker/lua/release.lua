-- Tickets leased by `match_id` back to the pool at their original place; others are skipped
-- (cancelled meanwhile, or the lease already expired and passed on). With `orphaned` = '1' the
-- match is listed in `orphans` as well (a server may be allocated for it: its director gave up on
-- an allocation of unknown outcome, or on an assignment), even if no ticket went back.
-- ARGV: now, history, match_id, orphaned ('1' or '0'), ticket ids...     Returns how many went back.
local match_id, count = ARGV[3], 0
if ARGV[4] == '1' then orphan(match_id) end
forget_match(match_id)
for i = 5, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', K.state, id) == 'leased' and redis.call('HGET', K.match, id) == match_id then
    requeue(id)
    count = count + 1
  end
end
return count
