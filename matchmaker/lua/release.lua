-- Tickets leased by `match_id` back to the pool at their original place; others are skipped
-- (cancelled meanwhile, or the lease already expired and passed on). With `orphaned` = '1' the
-- match is listed in `orphans` as well (a server may be allocated for it: its director gave up on
-- an allocation of unknown outcome, or on an assignment), even if no ticket went back; but never
-- a match that was assigned (a director stopped between its assignment and its reply): its
-- server is the players'.
-- ARGV: now, history, match_id, orphaned ('1' or '0'), ticket ids...     Returns how many went back.
local match_id, count, assigned = ARGV[3], 0, false
for i = 5, #ARGV do
  local id = ARGV[i]
  local state = redis.call('HGET', K.state, id)
  if redis.call('HGET', K.match, id) == match_id then
    if state == 'leased' then
      requeue(id)
      count = count + 1
    elseif state == 'matched' then
      assigned = true
    end
  end
end
if ARGV[4] == '1' and not assigned then orphan(match_id) end
forget_match(match_id)
return count
