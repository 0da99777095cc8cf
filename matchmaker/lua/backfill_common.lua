-- Prepended (after common.lua) to every backfill script: the queue's backfill keys follow its
-- ticket keys in KEYS (matchmaker.backfills.BackfillKeys, the same hash slot). A backfill's fields:
--   docs      HASH id -> msgpack of what never changes (queue, match, server, created, source)
--   slots     HASH id -> players still wanted per team, space-separated ('1 0')
--   bstate    HASH id -> open | filled | cancelled
--   filled    HASH id -> players added so far
--   lock      HASH id -> 'fill-id deadline player...': the fill in flight (one at a time; lapses at
--                        its deadline) and the players it may have written onto the server
--   open      ZSET open ids by creation time: what directors fill, oldest first
--   by_server HASH game server -> its open backfill (at most one per server)
--   lapsed    HASH fill id -> 'backfill-id lock': locks taken over or closed before their fill ended;
--                  a director takes their players off the server again once the deadline passed
--   commits   HASH id -> the ids of its last fills committed (a retried commit is recognised)
--   closed    ZSET closed ids by when they closed: purged after the ticket store's retention
-- A filled ticket is like any matched one: `match` holds the match id, `assignment` the server.
local NB = #KEYS - 10
local B = {
  docs = KEYS[NB + 1], slots = KEYS[NB + 2], bstate = KEYS[NB + 3], filled = KEYS[NB + 4],
  lock = KEYS[NB + 5], open = KEYS[NB + 6], by_server = KEYS[NB + 7], lapsed = KEYS[NB + 8],
  commits = KEYS[NB + 9], closed = KEYS[NB + 10],
}
local COMMITS_KEPT = 32

-- The fill holding the backfill's lock, if it has not lapsed.
local function holder(id)
  local lock = redis.call('HGET', B.lock, id)
  if not lock then return nil end
  local words_ = words(lock)
  if tonumber(words_[2]) <= NOW then return nil end
  return words_[1]
end

-- The backfill's lock set aside (a fill may have written the server and not committed): swept later.
local function set_aside(id)
  local lock = redis.call('HGET', B.lock, id)
  if lock then
    redis.call('HSET', B.lapsed, words(lock)[1], id .. ' ' .. lock)
    redis.call('HDEL', B.lock, id)
  end
end

local function close(id, state, server)
  redis.call('HSET', B.bstate, id, state)
  redis.call('ZREM', B.open, id)
  redis.call('ZADD', B.closed, fmt(NOW), id)
  set_aside(id)
  if redis.call('HGET', B.by_server, server) == id then redis.call('HDEL', B.by_server, server) end
end
