-- Move an entry's cursor (unix time of the last tick it handled) forward, never back.
-- KEYS[1] cursors hash; ARGV[1] entry name; ARGV[2] cursor
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and tonumber(current) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
