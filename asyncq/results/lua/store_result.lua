-- Store result records under the record rule (the prelude's asyncq_store), one per key:
-- a batch of writes is one script call, not one call per record.
-- KEYS[i] the i-th result key; ARGV 5 per key, in key order: ttl_ms, final ('1'/'0'),
-- channel ('' for none), value, reply channel ('' for none)
local stored = 0
for i = 1, #KEYS do
  local at = (i - 1) * 5
  stored = stored + asyncq_store(KEYS[i], ARGV[at + 4], ARGV[at + 1], ARGV[at + 2] == '1',
                                 ARGV[at + 3], ARGV[at + 5])
end
return stored
