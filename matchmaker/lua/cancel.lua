-- Cancel a queued or leased ticket (a leased one makes its holder's assign fail); a ticket already
-- matched, cancelled or expired is left as it is. Returns the ticket as read.lua does, after.
-- ARGV: now, history, id, reason
local id = ARGV[3]
local state = redis.call('HGET', K.state, id)
if state == 'queued' or state == 'leased' then finish(id, 'cancelled', ARGV[4]) end
return record(id)
