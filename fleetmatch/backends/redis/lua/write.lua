-- A batch of creates, updates and deletes of one namespace and kind, each checked and applied on
-- its own (one failing check does not stop the others), atomically as a whole. Every change is
-- appended to the namespace's event stream; its stream id becomes the object's resourceVersion.
-- KEYS: objs (name -> body), vers (name -> version), meta (name -> "generation|specdigest|uid|created"),
--       events (stream), floor (id of the newest event trimmed from the stream)
-- ARGV: maxlen, then 7 per write: op (create|update|delete), name, expected version ('' = any),
--       body, spec digest, uid, creation timestamp
-- The server owns generation, uid and creationTimestamp (kept beside the body, as resourceVersion
-- is): an update cannot change them, and a different uid is refused.
-- Returns one {status, version, generation, uid, created} per write;
-- status: ok | exists | notfound | conflict | noop | immutable.
local objs, vers, meta, events, floor = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local maxlen = tonumber(ARGV[1])

local function write(op, name, expected, body, digest, uid, created)
  local current = redis.call('HGET', vers, name)
  local generation = 1
  local event
  if op == 'create' then
    if current then return {'exists', current, 0, '', ''} end
    event = 'ADDED'
  else
    if not current then return {'notfound', '', 0, '', ''} end
    local old = redis.call('HGET', meta, name)
    local old_gen, old_digest, old_uid, old_created = string.match(old, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
    generation = tonumber(old_gen)
    if expected ~= '' and expected ~= current then return {'conflict', current, generation, old_uid, old_created} end
    if op == 'update' and uid ~= '' and uid ~= old_uid then
      return {'immutable', current, generation, old_uid, old_created}
    end
    uid, created = old_uid, old_created
    if op == 'update' then
      if redis.call('HGET', objs, name) == body then return {'noop', current, generation, uid, created} end
      if old_digest ~= digest then generation = generation + 1 end
      event = 'MODIFIED'
    else
      body = redis.call('HGET', objs, name)
      event = 'DELETED'
    end
  end
  local id = redis.call('XADD', events, '*', 't', event, 'n', name, 'g', tostring(generation), 'u', uid, 'c', created, 'b', body)
  if op == 'delete' then
    redis.call('HDEL', objs, name)
    redis.call('HDEL', vers, name)
    redis.call('HDEL', meta, name)
  else
    redis.call('HSET', objs, name, body)
    redis.call('HSET', vers, name, id)
    redis.call('HSET', meta, name, tostring(generation) .. '|' .. digest .. '|' .. uid .. '|' .. created)
  end
  return {'ok', id, generation, uid, created}
end

local results = {}
for i = 2, #ARGV, 7 do
  results[#results + 1] = write(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6])
end

-- Keep the history bounded; remember the newest trimmed id so a watch from before it is refused
-- (ExpiredError, re-list) instead of silently missing events.
local excess = redis.call('XLEN', events) - maxlen
if excess > 0 then
  local trimmed = redis.call('XRANGE', events, '-', '+', 'COUNT', excess)
  for _, entry in ipairs(trimmed) do redis.call('XDEL', events, entry[1]) end
  redis.call('SET', floor, trimmed[#trimmed][1])
end
return results
