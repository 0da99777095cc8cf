-- Keep a match's leases alive while its director is still at work (a slow allocation): if
-- `match_id` holds every ticket's lease and none has run out, move every deadline to
-- now + seconds. A lease that ran out is not revived, even if nobody reaped it yet: once past
-- its deadline the match may be listed as an orphan whose server another director releases.
-- ARGV: now, history, match_id, lease seconds, ticket ids...
-- Returns 1 (all renewed) or 0 (nothing changed: the match lost a ticket).
local match_id, deadline = ARGV[3], fmt(NOW + tonumber(ARGV[4]))
for i = 5, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', K.state, id) ~= 'leased' or redis.call('HGET', K.match, id) ~= match_id then return 0 end
  local score = redis.call('ZSCORE', K.leases, id)
  if not score or tonumber(score) <= NOW then return 0 end
end
for i = 5, #ARGV do
  redis.call('ZADD', K.leases, deadline, ARGV[i])
end
return 1
