-- Store one result record under the record rule (the prelude's asyncq_store).
-- KEYS[1] result key; ARGV: ttl_ms, final ('1'/'0'), channel ('' for none), value,
-- reply channel ('' for none)
return asyncq_store(KEYS[1], ARGV[4], ARGV[1], ARGV[2] == '1', ARGV[3], ARGV[5])
