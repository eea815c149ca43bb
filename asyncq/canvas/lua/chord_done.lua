-- One chord member is final: record it (first record stays) and tell whether to fire.
-- KEYS[1] the members' records (hash: index -> record), KEYS[2] the fired flag
-- ARGV: index, n, ttl_ms, record
-- Returns 0, or every member's record as HGETALL's flat list while the callback is
-- not yet marked sent (each caller until then: a crash before the send is repaired
-- by the redelivery of the last member, and the callback's id is deterministic).
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[4]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
if redis.call('HLEN', KEYS[1]) < tonumber(ARGV[2]) then return 0 end
local fired = redis.call('GET', KEYS[2])
if fired == 'sent' then return 0 end
if not fired then redis.call('SET', KEYS[2], 'firing', 'PX', ARGV[3]) end
return redis.call('HGETALL', KEYS[1])
