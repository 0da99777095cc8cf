-- One consistent snapshot of a ticket (state, body, assignment, reason), or false if unknown.
-- ARGV: now, history, id
return record(ARGV[3])
