-- Move one stream entry to the dead-letter stream, optionally storing a result.
-- KEYS[1] stream; KEYS[2] dead-letter stream; KEYS[3] result key (optional)
-- ARGV: group, entry id, payload, reason, task id, task, deliveries, dead_at,
--       then (with KEYS[3]) ttl_ms, channel ('' for none), value
redis.call('XADD', KEYS[2], '*', 'd', ARGV[3], 'reason', ARGV[4], 'id', ARGV[5],
  'task', ARGV[6], 'deliveries', ARGV[7], 'at', ARGV[8], 'src', ARGV[2])
if KEYS[3] then
  local current = redis.call('GET', KEYS[3])
  local tag = current and string.sub(current, 1, 1) or ''
  if tag ~= 'S' and tag ~= 'F' and tag ~= 'C' then
    redis.call('SET', KEYS[3], ARGV[11], 'PX', ARGV[9])
    if ARGV[10] ~= '' then redis.call('PUBLISH', ARGV[10], ARGV[11]) end
  end
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
