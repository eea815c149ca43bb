-- Move due delayed messages into the stream.
-- KEYS[1] delayed sorted set (score = due time in ms); KEYS[2] stream
-- ARGV[1] now in ms; ARGV[2] most to move
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for i = 1, #due do
  redis.call('XADD', KEYS[2], '*', 'd', due[i])
  redis.call('ZREM', KEYS[1], due[i])
end
return #due
