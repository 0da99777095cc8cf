-- Close an open backfill (DELETE /v1/backfills/{id}, or its server is gone); a fill in flight then
-- fails its commit and returns its tickets. ARGV: now, history, backfill id, state ('cancelled' or
-- 'filled'), game server. Returns 1 if it was open.
local id = ARGV[3]
if redis.call('HGET', B.bstate, id) ~= 'open' then return 0 end
close(id, ARGV[4], ARGV[5])
return 1
