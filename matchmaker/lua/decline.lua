-- A ticket declines the match proposed to it: it is cancelled with `reason`, and the match's other
-- tickets go back to the pool at their original place (announced).
-- ARGV: now, history, id, reason
-- Returns {status, record}: 'ok' (declined now, or before: a retry) or 'not-proposed' (nothing
-- changed: no match awaits this ticket's answer).
local id, why = ARGV[3], ARGV[4]
local state = redis.call('HGET', K.state, id)
if state == 'cancelled' and redis.call('HGET', K.reason, id) == why then return {'ok', record(id)} end
if state ~= 'proposed' then return {'not-proposed', record(id)} end
local holder = redis.call('HGET', K.match, id)
finish(id, 'cancelled', why)
drop_proposal(holder)
return {'ok', record(id)}
