-- Move one stream entry to the dead-letter stream, optionally storing a result.
-- KEYS[1] stream; KEYS[2] dead-letter stream; KEYS[3] result key (optional)
-- ARGV: group, entry id, payload, reason, task id, task, deliveries, dead_at,
--       cap (dead letters kept: the oldest beyond it go, approximately),
--       then (with KEYS[3]) ttl_ms, channel ('' for none), value, reply ('' for none)
-- The rejection record is final for waiters but never replaces a settled record
-- (the prelude's asyncq_store).
-- An entry its group no longer holds pending was settled already (this script tried
-- again after NotReplicated, or a peer settled it): no second dead letter. A stream or
-- group that is gone (queue deleted) still gets its dead letter.
local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if type(pending) == 'table' and not pending.err and #pending == 0 then
  return 0
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[9], '*', 'd', ARGV[3], 'reason', ARGV[4],
  'id', ARGV[5], 'task', ARGV[6], 'deliveries', ARGV[7], 'at', ARGV[8], 'src', ARGV[2])
if KEYS[3] then
  asyncq_store(KEYS[3], ARGV[12], ARGV[10], true, ARGV[11], ARGV[13])
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
