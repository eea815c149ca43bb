-- Store result records under the record rule (the prelude's asyncq_store), one per key:
-- a batch of writes is one script call, not one call per record.
-- KEYS[i] the i-th result key; ARGV 5 per key, in key order: ttl_ms, final ('1'/'0'),
-- channel ('' for none), value, reply channel ('' for none)
-- A write Redis refuses (its key holds another type) does not stop the others: each
-- is stored as if it had a call of its own, then the first refusal fails the call.
local replies = {}  -- a reply channel's records go as one message (asyncq_send_replies)
local function store(i)
  local at = (i - 1) * 5
  return asyncq_store(KEYS[i], ARGV[at + 4], ARGV[at + 1], ARGV[at + 2] == '1',
                      ARGV[at + 3], ARGV[at + 5], replies)
end
local stored, refused = 0, nil
for i = 1, #KEYS do
  local ok, wrote = pcall(store, i)
  if ok then
    stored = stored + wrote
  elseif refused == nil then
    refused = wrote
  end
end
asyncq_send_replies(replies)  -- what was stored is notified, refusal or not
if refused ~= nil then
  error(refused)
end
return stored
