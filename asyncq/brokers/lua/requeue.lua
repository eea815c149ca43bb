-- Hand pending entries back to the stream at once: copy each to a new entry, ack, delete.
-- KEYS[1] stream; ARGV[1] group; ARGV[2..] entry ids
local moved = 0
for i = 2, #ARGV do
  local entry = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if entry[1] then
    redis.call('XADD', KEYS[1], '*', unpack(entry[1][2]))
    moved = moved + 1
  end
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
end
return moved
