#!lua flags=allow-cross-slot-keys
-- Store many result records on one Redis Cluster node, whatever their slots (a Redis
-- Cluster backend groups a batch of writes by node and sends each node one call).
-- The keys are not declared (they are in several slots), so Redis checks each access:
-- a key this node does not serve (its slot moved, or is moving) fails the script, and
-- the client stores that node's writes again key by key, following MOVED and ASK.
-- Writes done before such a failure stay; doing one again changes nothing (a settled
-- record is kept, and is not notified twice).
-- ARGV[1] msgpack array, 5 items per write: key, ttl_ms, final, channel ('' for none), value
local writes = cmsgpack.unpack(ARGV[1])
local stored = 0
for i = 1, #writes, 5 do
  stored = stored + asyncq_store(writes[i], writes[i + 4], writes[i + 1], writes[i + 2],
                                 writes[i + 3])
end
return stored
