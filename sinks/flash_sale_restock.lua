-- Add stock to a sale: available and restocked grow together, so the invariant holds.
--
-- KEYS[1] meta hash   ARGV[1] units (integer >= 1)
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
redis.call('HINCRBY', KEYS[1], 'restocked', ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'available', ARGV[1])
