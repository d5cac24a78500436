-- Claim one coupon of a campaign budget for a push, at most once per push_id.
--
-- KEYS[1]  counter of coupons granted so far
-- KEYS[2]  hash push_id -> 1 (granted) | 0 (budget exhausted)
-- ARGV[1]  push_id; ARGV[2] budget
-- A relay that repeats after a crash gets the first answer again, so a push never takes two
-- coupons and the counter never passes the budget.
local prev = redis.call('HGET', KEYS[2], ARGV[1])
if prev then
  return tonumber(prev)
end
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used < tonumber(ARGV[2]) then
  redis.call('INCR', KEYS[1])
  redis.call('HSET', KEYS[2], ARGV[1], 1)
  return 1
end
redis.call('HSET', KEYS[2], ARGV[1], 0)
return 0
