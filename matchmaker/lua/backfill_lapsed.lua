-- Fills whose deadline passed without a commit or a release (their director died or stalled):
-- {backfill id, lock} for each, the lock as 'fill-id deadline player...'. The caller takes those
-- players off the server if the fill wrote them there, then calls backfill_forget.
-- ARGV: now, history, limit
local out, limit = {}, tonumber(ARGV[3])
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
