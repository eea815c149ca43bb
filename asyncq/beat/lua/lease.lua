-- Acquire or renew the beat leader lease.
-- KEYS[1] lease key; ARGV[1] this scheduler's token; ARGV[2] lease in ms
-- Returns 1 when the caller leads (the lease is its own, renewed), else 0.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
