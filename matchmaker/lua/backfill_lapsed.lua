-- Fills whose deadline passed without a commit or a release (their director died or stalled):
-- {backfill id, lock} for each, the lock as 'fill-id deadline player...'. The caller takes those
-- players off the server if the fill wrote them there, then calls backfill_forget.
-- Closed backfills older than the retention are purged on the way (GET answers 404 after).
-- ARGV: now, history, limit, retention seconds
local out, limit = {}, tonumber(ARGV[3])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', B.closed, '-inf', fmt(NOW - tonumber(ARGV[4])), 'LIMIT', 0, limit)) do
  for _, key in ipairs({B.docs, B.slots, B.bstate, B.filled, B.commits, B.lock}) do redis.call('HDEL', key, id) end
  redis.call('ZREM', B.closed, id)
end
for _, id in ipairs(redis.call('ZRANGE', B.open, 0, limit - 1)) do
  local lock = redis.call('HGET', B.lock, id)
  if lock and tonumber(words(lock)[2]) <= NOW then out[#out + 1] = {id, lock} end
end
local aside = redis.call('HGETALL', B.lapsed)
for i = 1, #aside, 2 do
  if #out >= limit then break end
  local w = words(aside[i + 1])
  if tonumber(w[3]) <= NOW then
    out[#out + 1] = {w[1], string.sub(aside[i + 1], #w[1] + 2)}
  end
end
return out
