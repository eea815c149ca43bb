-- Send one periodic tick exactly once: mark its id, and queue the message only when
-- the mark is new, in one step.
-- KEYS[1] mark key (asyncq:{QUEUE}:beat:<tick id>); KEYS[2] stream (asyncq:{QUEUE}:stream)
-- ARGV[1] message bytes; ARGV[2] how long the mark lasts, in ms
-- Returns 1 when sent, 0 when the tick was sent already.
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) then
  return 0
end
redis.call('XADD', KEYS[2], '*', 'd', ARGV[1])
return 1
