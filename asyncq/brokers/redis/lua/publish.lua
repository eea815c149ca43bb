-- Append message bodies to one stream in a single call (a batch of enqueues).
-- KEYS[1] stream; ARGV[1] msgpack array of message bodies (one argument, so the
-- client packs one string instead of one per message), each becoming an entry with
-- field d
local bodies = cmsgpack.unpack(ARGV[1])
for i = 1, #bodies do
  redis.call('XADD', KEYS[1], '*', 'd', bodies[i])
end
return #bodies
