-- A ticket accepts the match proposed to it. The acceptance that completes the match (every ticket
-- accepted, before the deadline) leases all its tickets to it for `lease seconds` and lists the
-- match in `ready`, where exactly one director takes it (take_ready.lua) and allocates its server.
-- Every ticket of the match is announced (its players see how many accepted).
-- ARGV: now, history, id, lease seconds
-- Returns {status, record}: 'ok' (accepted now or before), 'ready' (this acceptance completed
-- the match), 'not-proposed' or 'late' (nothing changed: no match awaits this ticket's answer,
-- or its deadline passed and the reaper resolves it).
local id = ARGV[3]
local state, holder = redis.call('HGET', K.state, id), redis.call('HGET', K.match, id)
if state == 'leased' and holder and redis.call('HEXISTS', K.accepted, id) == 1 then
  return {'ok', record(id)}  -- a retry after everyone accepted
end
if state ~= 'proposed' then return {'not-proposed', record(id)} end
if tonumber(redis.call('ZSCORE', K.leases, id)) <= NOW then return {'late', record(id)} end
if redis.call('HEXISTS', K.accepted, id) == 1 then return {'ok', record(id)} end
redis.call('HSET', K.accepted, id, '1')
local members = words(redis.call('HGET', K.members, holder))
local all = true
for _, m in ipairs(members) do
  if redis.call('HEXISTS', K.accepted, m) == 0 then all = false end
end
local status = 'ok'
if all then
  local deadline = fmt(NOW + tonumber(ARGV[4]))
  for _, m in ipairs(members) do
    redis.call('HSET', K.state, m, 'leased')
    redis.call('ZADD', K.leases, deadline, m)
  end
  redis.call('ZADD', K.ready, fmt(NOW), holder)
  status = 'ready'
end
for _, m in ipairs(members) do announce(m, all and 'accepted' or 'proposed') end
return {status, record(id)}
