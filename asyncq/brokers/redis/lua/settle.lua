-- Store results and acknowledge stream entries in one atomic step.
-- KEYS[1]   the stream; KEYS[2..] one result key per write
-- ARGV[1]   consumer group
-- ARGV[2]   msgpack [ids, writes]: ids = entry ids to ack and delete; writes = for each
--           result key, 5 items: ttl_ms, final (true/false), channel ('' for none),
--           reply channel ('' for none), value
-- (one packed argument instead of five per task: packing arguments dominated the cost)
-- Each write follows the result-record rule (the prelude's asyncq_store: a final write
-- never replaces a settled final record; X, a dead letter's rejection, gives way).
local group = ARGV[1]
local data = cmsgpack.unpack(ARGV[2])
local ids, writes = data[1], data[2]
local replies = {}  -- a reply channel's records go as one message (asyncq_send_replies)
for i = 2, #KEYS do
  local a = (i - 2) * 5
  asyncq_store(KEYS[i], writes[a + 5], writes[a + 1], writes[a + 2], writes[a + 3],
               writes[a + 4], replies)
end
asyncq_send_replies(replies)
if #ids == 0 then return 0 end
redis.call('XACK', KEYS[1], group, unpack(ids))

-- Acked entries are deleted, so XLEN minus pending is what waits. Every entry older
-- than the oldest one the group still needs (its oldest pending entry, or, when none is
-- pending, the one after its last delivered one) is acked: one XTRIM drops those from
-- the head of the stream. When some of the batch is at or after that point (tasks that
-- finished before an older one did), XDEL, which looks each id up within its node,
-- takes the rest.

-- The id right after ``id`` ('<ms>-<seq>'): XTRIM MINID keeps it, so it drops ``id``.
-- A sequence too long for Lua's numbers to add 1 exactly gives ``id`` itself (XDEL then).
local function after(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  if not ms or #seq > 12 then return id end
  return ms .. '-' .. string.format('%d', tonumber(seq) + 1)
end

local function oldest_needed()
  -- pcall: the stream or the group may be gone (queue deleted, server flushed); then
  -- nothing is trimmed and the ids go to XDEL, as they all did before the trim
  local pending = redis.pcall('XPENDING', KEYS[1], group)
  if pending.err then return nil end
  if pending[1] > 0 then return pending[2] end
  for _, info in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local name, last
    for j = 1, #info, 2 do
      if info[j] == 'name' then name = info[j + 1] end
      if info[j] == 'last-delivered-id' then last = info[j + 1] end
    end
    if name == group then return last and after(last) end
  end
  return nil
end

-- (XTRIM returns how many it dropped: as many as the batch when it dropped the batch.
-- Any other count, XDEL: fewer, some of the batch is left; more, it dropped entries
-- the group no longer held, such as those of a consumer deleted with XGROUP
-- DELCONSUMER, and may have left some of the batch)
local floor = oldest_needed()
if not floor or redis.call('XTRIM', KEYS[1], 'MINID', floor) ~= #ids then
  redis.call('XDEL', KEYS[1], unpack(ids))
end
return #ids
