-- A ticket accepts the match proposed to it: as a whole (`player` empty: an API key, or whoever
-- opened it without playing in it), or one of its players (a party's members each accept with
-- their own token; the ticket has accepted once every one of its players has, kept in `accepted`
-- under "<id> players" until then). The acceptance that completes the match (every ticket
-- accepted, before the deadline) leases all its tickets to it for `lease seconds` and lists the
-- match in `ready`, where exactly one director takes it (take_ready.lua) and allocates its server.
-- Every ticket of the match is announced (its players see how many accepted).
-- ARGV: now, history, id, lease seconds, player ('' = the whole ticket)
-- Returns {status, record}: 'ok' (accepted now or before, or this player did and others of the
-- ticket have yet to), 'ready' (this acceptance completed the match), 'not-proposed' or 'late'
-- (nothing changed: no match awaits this ticket's answer, or its deadline passed and the reaper
-- resolves it).
local id, player = ARGV[3], ARGV[5] or ''
local state, holder = redis.call('HGET', K.state, id), redis.call('HGET', K.match, id)
if state == 'leased' and holder and redis.call('HEXISTS', K.accepted, id) == 1 then
  return {'ok', record(id)}  -- a retry after everyone accepted
end
if state ~= 'proposed' then return {'not-proposed', record(id)} end
if tonumber(redis.call('ZSCORE', K.leases, id)) <= NOW then return {'late', record(id)} end
if redis.call('HEXISTS', K.accepted, id) == 1 then return {'ok', record(id)} end
if player ~= '' then
  local field = id .. ' players'
  local took = words(redis.call('HGET', K.accepted, field))
  local has = {}
  for _, p in ipairs(took) do has[p] = true end
  if not has[player] then
    took[#took + 1] = player
    has[player] = true
    redis.call('HSET', K.accepted, field, table.concat(took, ' '))
  end
  for _, p in ipairs(words(redis.call('HGET', K.players, id))) do
    if not has[p] then
      announce(id, 'proposed')  -- its players see who of them accepted
      return {'ok', record(id)}
    end
  end
end
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
