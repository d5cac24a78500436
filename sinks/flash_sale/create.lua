-- Create a flash sale once; a second create with the same id changes nothing.
--
-- KEYS[1] meta hash of the sale (every key of a sale shares the hash tag {sale:<id>})
-- ARGV    field, value pairs of the new sale (stock, available, limit, window, ttl ...)
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
