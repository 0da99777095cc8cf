-- Prepended to every ticket script: the queue's keys, the clock, and the state moves they share.
-- Every script is safe to run twice (a retry after a lost reply changes nothing more and reports
-- the same success). Every script gets the same KEYS (matchmaker.tickets.Keys, all in one hash
-- slot) and starts ARGV with: now ('' = the Redis server's clock), history (events kept).
-- A ticket's state moves only like this:
--   queued -> leased (claim) -> queued (release, lease expiry) | matched (assign) | cancelled
--   queued -> cancelled | expired (past its TTL)
-- "Open" means queued or leased: it counts against its owner's limit and sits in `ttl`.
local K = {
  bodies = KEYS[1], state = KEYS[2], enqueued = KEYS[3], owner = KEYS[4], match = KEYS[5],
  assignment = KEYS[6], reason = KEYS[7], pool = KEYS[8], leases = KEYS[9], ttl = KEYS[10],
  done = KEYS[11], open = KEYS[12], events = KEYS[13],
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

-- An open ticket back in the pool under its original enqueue time: nobody loses their place.
local function requeue(id)
  redis.call('HSET', K.state, id, 'queued')
  redis.call('HDEL', K.match, id)
  redis.call('ZREM', K.leases, id)
  redis.call('ZADD', K.pool, redis.call('HGET', K.enqueued, id), id)
end

-- An open ticket to a final state (matched, cancelled, expired): out of the pool and the leases,
-- off its owner's count, remembered in `done` until purged, and announced on the event stream.
-- A matched ticket keeps its match id in `match` (what makes a repeated assign recognisable).
local function finish(id, state, why)
  redis.call('HSET', K.state, id, state)
  if why ~= '' then redis.call('HSET', K.reason, id, why) end
  if state ~= 'matched' then redis.call('HDEL', K.match, id) end
  redis.call('ZREM', K.pool, id)
  redis.call('ZREM', K.leases, id)
  redis.call('ZREM', K.ttl, id)
  local owner = redis.call('HGET', K.owner, id)
  if redis.call('HINCRBY', K.open, owner, -1) <= 0 then redis.call('HDEL', K.open, owner) end
  redis.call('ZADD', K.done, fmt(NOW), id)
  redis.call('XADD', K.events, 'MAXLEN', '~', HISTORY, '*', 't', id, 's', state)
end

-- What get and cancel return: state, body, assignment (or false), reason (or false).
local function record(id)
  local state = redis.call('HGET', K.state, id)
  if not state then return false end
  return {state, redis.call('HGET', K.bodies, id), redis.call('HGET', K.assignment, id),
          redis.call('HGET', K.reason, id)}
end
