-- Take the matches in `orphans` that are due for a release attempt, at most `limit`: each is due
-- again after a back-off (base * 2^(tries - 1), at most `cap` seconds) unless it is forgotten
-- first (released), so a director that dies mid-release leaves it to another. A match tried
-- `max tries` times is given up.
-- ARGV: now, history, limit, base seconds, cap seconds, max tries
-- Returns {matches to release now, matches given up}.
local limit, base, cap, max_tries = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local due, dropped = {}, {}
for _, match_id in ipairs(redis.call('ZRANGEBYSCORE', K.orphans, '-inf', fmt(NOW), 'LIMIT', 0, limit)) do
  local tries = redis.call('HINCRBY', K.orphan_tries, match_id, 1)
  if tries > max_tries then
    redis.call('ZREM', K.orphans, match_id)
    redis.call('HDEL', K.orphan_tries, match_id)
    dropped[#dropped + 1] = match_id
  else
    redis.call('ZADD', K.orphans, fmt(NOW + math.min(cap, base * 2 ^ (tries - 1))), match_id)
    due[#due + 1] = match_id
  end
end
return {due, dropped}
