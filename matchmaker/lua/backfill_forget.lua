-- A lapsed fill swept (its players are off the server): its lock or set-aside record removed.
-- ARGV: now, history, backfill id, fill id
local id, fill = ARGV[3], ARGV[4]
local lock = redis.call('HGET', B.lock, id)
if lock and words(lock)[1] == fill and tonumber(words(lock)[2]) <= NOW then redis.call('HDEL', B.lock, id) end
redis.call('HDEL', B.lapsed, fill)
return 1
