-- A shared rate limit (GCRA, the token bucket as a "theoretical arrival time").
-- KEYS[1] the limit's key (its next free time, in microseconds of server time)
-- ARGV[1] microseconds between tokens (1 / rate); ARGV[2] burst (tokens at once)
-- A token taken late does not delay the ones after it beyond burst - 1 intervals of
-- catching up, so lateness of the takers does not lower the long-run rate.
-- Takes a token and returns 0, or takes none and returns the microseconds until one is
-- due. Server time (TIME), so workers' clocks do not matter.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
-- never more than burst intervals ahead (a no-op at a steady rate): a raised limit
-- holds at once, not after the old, longer interval
if tat > now + interval * burst then
  tat = now + interval * burst
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
local allowed_at = tat - interval * (burst - 1)
if now < allowed_at then
  return math.ceil(allowed_at - now)
end
local ttl_ms = math.ceil((tat + interval - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', tat + interval), 'PX', ttl_ms)
return 0
