-- Store one result record; a final record never replaces a settled final one.
-- KEYS[1] result key; ARGV: ttl_ms, final ('1'/'0'), channel ('' for none), value
-- Tags S, F and C are settled; X (a dead letter's rejection) is final for waiters but
-- gives way to a later outcome, so a requeued dead letter that runs can report it.
local cur = redis.call('GET', KEYS[1])
local tag = cur and string.sub(cur, 1, 1) or ''
if ARGV[2] == '1' and (tag == 'S' or tag == 'F' or tag == 'C') then return 0 end
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[1])
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return 1
