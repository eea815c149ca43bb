-- Put dead letters back on their queue.
-- KEYS[1] dead-letter stream; KEYS[2] stream; ARGV = dead-letter entry ids
local moved = 0
for i = 1, #ARGV do
  local entry = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if entry[1] then
    local fields = entry[1][2]
    for j = 1, #fields, 2 do
      if fields[j] == 'd' then
        redis.call('XADD', KEYS[2], '*', 'd', fields[j + 1])
        moved = moved + 1
      end
    end
    redis.call('XDEL', KEYS[1], ARGV[i])
  end
end
return moved
