-- A match's server was released (or found already gone): off the `orphans` list.
-- ARGV: now, history, match_id
redis.call('ZREM', K.orphans, ARGV[3])
redis.call('HDEL', K.orphan_tries, ARGV[3])
return 1
