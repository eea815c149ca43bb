-- Read new entries from a queue's priority streams, highest level first.
-- KEYS: the streams, highest priority first (the plain stream, level 0, last)
-- ARGV[1] group; ARGV[2] consumer; ARGV[3] most entries to read in all
-- Returns {stream, entry id, fields} for each entry read, in priority order.
local want = tonumber(ARGV[3])
local out = {}
for i = 1, #KEYS do
  if want <= 0 then break end
  local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', want,
                           'STREAMS', KEYS[i], '>')
  if reply then
    for _, entry in ipairs(reply[1][2]) do
      out[#out + 1] = {KEYS[i], entry[1], entry[2]}
      want = want - 1
    end
  end
end
return out
