-- All objects of a namespace and the stream position they were read at, in one atomic step
-- (so a watch from that position misses nothing).
-- KEYS: objs, vers, meta, events
local last = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1)
local version = '0-0'
if #last > 0 then version = last[1][1] end
return {version, redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3])}
