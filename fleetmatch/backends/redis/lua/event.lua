-- Record one event occurrence, aggregated with an identical earlier one, then trim by age and count.
-- KEYS: 1 records (HASH key -> msgpack [kind, name, reason, message, type, count, first_ms, last_ms])
--       2 order   (ZSET key scored by last_ms)
-- ARGV: 1 key, 2 kind, 3 name, 4 reason, 5 message, 6 type, 7 retention_ms, 8 max records
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local count, first = 1, now
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local r = cmsgpack.unpack(old)
  count, first = r[6] + 1, r[7]
end
redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack({ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], count, first, now}))
redis.call('ZADD', KEYS[2], now, ARGV[1])
local drop = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[7]))
local excess = redis.call('ZCARD', KEYS[2]) - #drop - tonumber(ARGV[8])
if excess > 0 then
  local oldest = redis.call('ZRANGE', KEYS[2], #drop, #drop + excess - 1)
  for _, k in ipairs(oldest) do table.insert(drop, k) end
end
for _, k in ipairs(drop) do
  redis.call('HDEL', KEYS[1], k)
  redis.call('ZREM', KEYS[2], k)
end
return count
