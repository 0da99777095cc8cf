-- Prepended (after common.lua) to every backfill script: the queue's backfill keys follow its
-- ticket keys in KEYS (matchmaker.backfills.BackfillKeys, the same hash slot). A backfill's fields:
--   docs      HASH id -> msgpack of what never changes (queue, match, server, created, source)
--   slots     HASH id -> players still wanted per team, space-separated ('1 0')
--   bstate    HASH id -> open | filled | cancelled
--   filled    HASH id -> players added so far
--   lock      HASH id -> 'fill-id deadline': the fill in flight (one at a time; lapses at its deadline)
--   open      ZSET open ids by creation time: what directors fill, oldest first
--   by_server HASH game server -> its open backfill (at most one per server)
local NB = #KEYS - 7
local B = {
  docs = KEYS[NB + 1], slots = KEYS[NB + 2], bstate = KEYS[NB + 3], filled = KEYS[NB + 4],
  lock = KEYS[NB + 5], open = KEYS[NB + 6], by_server = KEYS[NB + 7],
}

-- The fill holding the backfill's lock, if it has not lapsed.
local function holder(id)
  local lock = redis.call('HGET', B.lock, id)
  if not lock then return nil end
  local words_ = words(lock)
  if tonumber(words_[2]) <= NOW then return nil end
  return words_[1]
end

local function close(id, state, server)
  redis.call('HSET', B.bstate, id, state)
  redis.call('ZREM', B.open, id)
  redis.call('HDEL', B.lock, id)
  if redis.call('HGET', B.by_server, server) == id then redis.call('HDEL', B.by_server, server) end
end
