-- Up to `limit` tickets of the queue in a state, for an operator: queued ones (in the pool or
-- leased: clients see both as queued) oldest first, then finished ones newest first, looking at
-- the `scan` most recently finished only (bounded work however many there are).
-- ARGV: now, history, state ('' = any; queued | matched | cancelled | expired), limit, scan
-- Returns {more (0 or 1), id, record, id, record, ...}.
local want, limit, scan = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local out, taken, more = {0}, 0, 0

local function take(ids, check)
  for _, id in ipairs(ids) do
    if more == 1 then return end
    if not check or redis.call('HGET', K.state, id) == want then
      if taken >= limit then
        more = 1
      else
        local rec = record(id)
        if rec then
          out[#out + 1] = id
          out[#out + 1] = rec
          taken = taken + 1
        end
      end
    end
  end
end

if want == '' or want == 'queued' then
  take(redis.call('ZRANGE', K.pool, 0, limit), false)
  take(redis.call('ZRANGE', K.leases, 0, limit), false)
end
if want ~= 'queued' then
  take(redis.call('ZREVRANGE', K.done, 0, scan - 1), want ~= '')
end
out[1] = more
return out
