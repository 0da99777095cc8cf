-- Renew a node's heartbeat with the server's clock.
-- KEYS: 1 info (HASH name -> msgpack [boot, address, capacity, started_ms]), 2 renew (HASH name -> ms)
-- ARGV: 1 name, 2 boot, 3 address, 4 capacity
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local started = now
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local r = cmsgpack.unpack(old)
  if r[1] == ARGV[2] then started = r[4] end
end
redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack({ARGV[2], ARGV[3], tonumber(ARGV[4]), started}))
redis.call('HSET', KEYS[2], ARGV[1], now)
return now
