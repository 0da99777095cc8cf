-- Apply one match result to the queue's ratings, once (matchmaker.ratingstore).
-- KEYS: the queue's ratings hash, the match's result marker (both in the queue's hash slot).
-- ARGV: marker TTL (seconds), marker value, n, then n triples: player, rating read before ('' =
-- none), rating after.
-- Returns {'done', marker} when a result was applied already (this one changes nothing);
-- {'moved'} when a rating changed since it was read (another result applied meanwhile: the caller
-- reads again and recomputes); {'applied'} after writing every rating and the marker.
local marker = redis.call('GET', KEYS[2])
if marker then
  return {'done', marker}
end
local n = tonumber(ARGV[3])
for i = 0, n - 1 do
  local current = redis.call('HGET', KEYS[1], ARGV[4 + 3 * i]) or ''
  if current ~= ARGV[5 + 3 * i] then
    return {'moved'}
  end
end
for i = 0, n - 1 do
  redis.call('HSET', KEYS[1], ARGV[4 + 3 * i], ARGV[6 + 3 * i])
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[1])
return {'applied'}
