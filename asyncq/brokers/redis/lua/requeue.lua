-- Hand pending entries back to the stream at once: copy each to a new entry, ack, delete.
-- The copy carries the deliveries so far in field 'n' (a hand-back is not a delivery
-- that failed), so the next delivery of it counts on from there.
-- With ARGV[2] = 1 (the worker could not process it) the hand-back counts as a delivery.
-- KEYS[1] stream; ARGV[1] group; ARGV[2] counted (0/1); ARGV[3..] entry ids
local moved = 0
local counted = tonumber(ARGV[2]) or 0
for i = 3, #ARGV do
  local entry = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if entry[1] then
    local fields = entry[1][2]
    local body, earlier = '', 0
    for j = 1, #fields, 2 do
      if fields[j] == 'd' then body = fields[j + 1] end
      if fields[j] == 'n' then earlier = tonumber(fields[j + 1]) or 0 end
    end
    local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
    local times = 1
    if pending[1] then times = tonumber(pending[1][4]) end
    redis.call('XADD', KEYS[1], '*', 'd', body, 'n', earlier + times - 1 + counted)
    moved = moved + 1
  end
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
end
return moved
