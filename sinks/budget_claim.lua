-- Claim one coupon of a campaign budget per push, at most once per push_id.
--
-- KEYS[1]  counter of coupons granted so far
-- KEYS[2]  hash push_id -> 1 (granted) | 0 (budget exhausted)
-- ARGV[1]  budget; ARGV[2..] push_ids, decided in this order
-- Returns 1 (granted) or 0 per push_id. A relay that repeats after a crash gets the first
-- answers again, so a push never takes two coupons and the counter never passes the budget.
local budget = tonumber(ARGV[1])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local out = {}
for i = 2, #ARGV do
  local prev = redis.call('HGET', KEYS[2], ARGV[i])
  if prev then
    out[#out + 1] = tonumber(prev)
  elseif used < budget then
    used = used + 1
    redis.call('HSET', KEYS[2], ARGV[i], 1)
    out[#out + 1] = 1
  else
    redis.call('HSET', KEYS[2], ARGV[i], 0)
    out[#out + 1] = 0
  end
end
redis.call('SET', KEYS[1], used)
return out
