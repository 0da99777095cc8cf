-- Prepended to every ticket script: the queue's keys, the clock, and the state moves they share.
-- Every script is safe to run twice (a retry after a lost reply changes nothing more and reports
-- the same success). Every script gets the same KEYS (matchmaker.tickets.Keys, all in one hash
-- slot) and starts ARGV with: now ('' = the Redis server's clock), history (events kept).
-- A ticket's state moves only like this:
--   queued -> leased (claim) -> queued (release, lease expiry) | matched (assign) | cancelled
--   queued -> cancelled | expired (past its TTL)
--   queued -> proposed (propose: a queue with acceptance) -> leased (every ticket accepted)
--          | queued (another ticket declined or did not accept in time) | cancelled (declined,
--          or did not accept in time); the acceptance deadline is its score in `leases`
-- "Open" means queued or leased: it is listed under each of its players in `by_player` (the
-- per-player limit) and sits in `ttl`.
local K = {
  bodies = KEYS[1], state = KEYS[2], enqueued = KEYS[3], owner = KEYS[4], players = KEYS[5],
  match = KEYS[6], assignment = KEYS[7], reason = KEYS[8], pool = KEYS[9], leases = KEYS[10],
  ttl = KEYS[11], done = KEYS[12], by_player = KEYS[13], events = KEYS[14], orphans = KEYS[15],
  orphan_tries = KEYS[16], tick = KEYS[17], members = KEYS[18], proposals = KEYS[19],
  accepted = KEYS[20], ready = KEYS[21],
}

local function clock(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local NOW = clock(ARGV[1])
local HISTORY = ARGV[2]

local function fmt(seconds)
  return string.format('%.6f', seconds)
end

-- A match whose game server may be allocated to nobody (its tickets went back to the pool): due for
-- a release attempt now, unless it is already listed.
local function orphan(match_id)
  redis.call('ZADD', K.orphans, 'NX', fmt(NOW), match_id)
end

-- An open ticket back in the pool under its original enqueue time: nobody loses their place.
local function requeue(id)
  redis.call('HSET', K.state, id, 'queued')
  redis.call('HDEL', K.match, id)
  redis.call('HDEL', K.accepted, id, id .. ' players')
  redis.call('ZREM', K.leases, id)
  redis.call('ZADD', K.pool, redis.call('HGET', K.enqueued, id), id)
end

-- Words of a space-separated list (player ids and ticket ids never hold spaces).
local function words(text)
  local out = {}
  if text then
    for word in string.gmatch(text, '%S+') do out[#out + 1] = word end
  end
  return out
end

-- The ticket off each of its players' open-ticket lists (a player with none left is dropped).
local function unlist(id)
  for _, player in ipairs(words(redis.call('HGET', K.players, id))) do
    local rest = {}
    for _, other in ipairs(words(redis.call('HGET', K.by_player, player))) do
      if other ~= id then rest[#rest + 1] = other end
    end
    if #rest == 0 then
      redis.call('HDEL', K.by_player, player)
    else
      redis.call('HSET', K.by_player, player, table.concat(rest, ' '))
    end
  end
end

-- An open ticket to a final state (matched, cancelled, expired): out of the pool and the leases,
-- off its players' open-ticket lists, remembered in `done` until purged, and announced on the
-- event stream. A matched ticket keeps its match id in `match` (what makes a repeated assign
-- recognisable).
local function finish(id, state, why)
  redis.call('HSET', K.state, id, state)
  if why ~= '' then redis.call('HSET', K.reason, id, why) end
  if state ~= 'matched' then redis.call('HDEL', K.match, id) end
  redis.call('HDEL', K.accepted, id, id .. ' players')
  redis.call('ZREM', K.pool, id)
  redis.call('ZREM', K.leases, id)
  redis.call('ZREM', K.ttl, id)
  unlist(id)
  redis.call('ZADD', K.done, fmt(NOW), id)
  redis.call('XADD', K.events, 'MAXLEN', '~', HISTORY, '*', 't', id, 's', state)
end

-- A change a waiting client hears of without the ticket finishing (proposed, back in the pool).
local function announce(id, state)
  redis.call('XADD', K.events, 'MAXLEN', '~', HISTORY, '*', 't', id, 's', state)
end

-- Tickets of a match of `members` (a queue with acceptance) that accepted it.
local function accepted_count(match_id)
  local n = 0
  for _, m in ipairs(words(redis.call('HGET', K.members, match_id))) do
    if redis.call('HEXISTS', K.accepted, m) == 1 then n = n + 1 end
  end
  return n
end

-- A proposed match's records gone (matched, released, or fallen through).
local function forget_match(match_id)
  redis.call('HDEL', K.members, match_id)
  redis.call('HDEL', K.proposals, match_id)
  redis.call('ZREM', K.ready, match_id)
end

-- A proposed match that fell through (a ticket declined): its tickets still awaiting acceptance
-- back to the pool at their original place, told so, and the match forgotten.
local function drop_proposal(match_id)
  for _, m in ipairs(words(redis.call('HGET', K.members, match_id))) do
    if redis.call('HGET', K.state, m) == 'proposed' and redis.call('HGET', K.match, m) == match_id then
      requeue(m)
      announce(m, 'queued')
    end
  end
  forget_match(match_id)
end

-- What get and cancel return: state, body, assignment (or false), reason (or false); for a ticket
-- of a proposed match also the proposal (msgpack), its acceptance deadline, how many of its
-- tickets accepted, whether this one did (1 or 0), and which of its players accepted so far (a
-- party whose members answer each for themselves; false if none did).
local function record(id)
  local state = redis.call('HGET', K.state, id)
  if not state then return false end
  local rec = {state, redis.call('HGET', K.bodies, id), redis.call('HGET', K.assignment, id),
               redis.call('HGET', K.reason, id)}
  local holder = redis.call('HGET', K.match, id)
  if holder and state ~= 'matched' then
    local doc = redis.call('HGET', K.proposals, holder)
    if doc then
      rec[5] = doc
      rec[6] = redis.call('ZSCORE', K.leases, id)
      rec[7] = accepted_count(holder)
      rec[8] = redis.call('HEXISTS', K.accepted, id)
      rec[9] = redis.call('HGET', K.accepted, id .. ' players')
    end
  end
  return rec
end
