-- Confirm a reservation for a paid order (reserved -> sold), at most once.
--
-- KEYS[1] meta hash  KEYS[2] reservations hash  KEYS[3] expiry zset
-- ARGV[1] reservation id  ARGV[2] order id
-- Returns 'confirmed', 'already_sold', 'late' (the reservation was released before the
-- payment: flagged for a refund, not sold) or 'unknown'.
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then
  return 'unknown'
end
local r = cjson.decode(raw)
if r.s == 'sold' then
  return 'already_sold'
end
if r.s ~= 'reserved' then
  -- counted once however often the same late payment is drained
  if not r.late then
    r.late = ARGV[2]
    redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(r))
    redis.call('HINCRBY', KEYS[1], 'late_payment', 1)
  end
  return 'late'
end
r.s = 'sold'
r.o = ARGV[2]
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(r))
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'reserved', -r.q)
redis.call('HINCRBY', KEYS[1], 'sold', r.q)
return 'confirmed'
