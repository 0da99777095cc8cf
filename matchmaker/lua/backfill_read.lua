-- Backfills as stored: for each id, {doc, slots, state, filled, lock} (false where unknown).
-- ARGV: now, history, '' (every open one, oldest first, at most ARGV[4]) or ids from ARGV[5]...
local ids = {}
if ARGV[3] == '' then
  ids = redis.call('ZRANGE', B.open, 0, tonumber(ARGV[4]) - 1)
else
  for i = 5, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local out = {}
for _, id in ipairs(ids) do
  out[#out + 1] = {id, redis.call('HGET', B.docs, id), redis.call('HGET', B.slots, id),
                   redis.call('HGET', B.bstate, id), redis.call('HGET', B.filled, id),
                   redis.call('HGET', B.lock, id)}
end
return out
