-- Delete the waiting and delayed messages of a queue, never the in-flight ones.
-- KEYS[1] stream; KEYS[2] delayed set; ARGV[1] the workers' consumer group.
-- Waiting entries are those after the group's last-delivered-id (all, with no group).
local last = nil
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if ok then
  for _, group in ipairs(groups) do
    local name, delivered = nil, nil
    for i = 1, #group, 2 do
      if group[i] == 'name' then name = group[i + 1] end
      if group[i] == 'last-delivered-id' then delivered = group[i + 1] end
    end
    if name == ARGV[1] then last = delivered end
  end
end
local removed = 0
if last == nil then
  removed = redis.call('XLEN', KEYS[1])
  redis.call('XTRIM', KEYS[1], 'MAXLEN', 0)
else
  local entries = redis.call('XRANGE', KEYS[1], '(' .. last, '+')
  for _, entry in ipairs(entries) do
    removed = removed + redis.call('XDEL', KEYS[1], entry[1])
  end
end
removed = removed + redis.call('ZCARD', KEYS[2])
redis.call('DEL', KEYS[2])
return removed
