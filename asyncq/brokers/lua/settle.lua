-- Store results and acknowledge stream entries in one atomic step.
-- KEYS[1]   the stream; KEYS[2..] one result key per write
-- ARGV[1]   consumer group; ARGV[2] n = number of entry ids; ARGV[3..2+n] entry ids
-- then for each write, 4 args: ttl_ms, final ('1'/'0'), channel ('' for none), value
-- A final write never replaces a settled final record (S, F, C: first final writer wins);
-- X, a dead letter's rejection, gives way to a later outcome.
local group = ARGV[1]
local n = tonumber(ARGV[2])
local base = 2 + n
for i = 2, #KEYS do
  local a = base + (i - 2) * 4
  local ttl, final, channel, value = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local write = true
  if final == '1' then
    local current = redis.call('GET', KEYS[i])
    if current then
      local tag = string.sub(current, 1, 1)
      if tag == 'S' or tag == 'F' or tag == 'C' then write = false end
    end
  end
  if write then
    redis.call('SET', KEYS[i], value, 'PX', ttl)
    if channel ~= '' then redis.call('PUBLISH', channel, value) end
  end
end
if n > 0 then
  local ids = {}
  for j = 1, n do ids[j] = ARGV[2 + j] end
  redis.call('XACK', KEYS[1], group, unpack(ids))
  redis.call('XDEL', KEYS[1], unpack(ids))
end
return n
