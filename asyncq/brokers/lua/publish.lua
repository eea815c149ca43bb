-- Append message bodies to one stream in a single call (a batch of enqueues).
-- KEYS[1] stream; ARGV[1..n] message bodies, each becoming an entry with field d
for i = 1, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'd', ARGV[i])
end
return #ARGV
