-- Cancel a queued or leased ticket (a leased one makes its holder's assign fail), or one awaiting
-- acceptance (a decline: the match's other tickets go back to the pool); a ticket already
-- matched, cancelled or expired is left as it is. Returns the ticket as read.lua does, after.
-- ARGV: now, history, id, reason
local id = ARGV[3]
local state = redis.call('HGET', K.state, id)
if state == 'queued' or state == 'leased' then finish(id, 'cancelled', ARGV[4]) end
if state == 'proposed' then
  local holder = redis.call('HGET', K.match, id)
  finish(id, 'cancelled', ARGV[4])
  drop_proposal(holder)
end
return record(id)
