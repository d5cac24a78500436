-- Add stock to a sale: available and restocked grow together, so the invariant holds.
--
-- KEYS[1] meta hash   ARGV[1] units (integer >= 1)   ARGV[2] most units a sale may hold
-- Answers available after, -1 for an unknown sale, -2 (nothing written) past the limit.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
local held = tonumber(redis.call('HGET', KEYS[1], 'stock') or '0')
  + tonumber(redis.call('HGET', KEYS[1], 'restocked') or '0')
if held + tonumber(ARGV[1]) > tonumber(ARGV[2]) then
  return -2
end
redis.call('HINCRBY', KEYS[1], 'restocked', ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'available', ARGV[1])
