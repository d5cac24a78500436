-- Record final push results in the business day's hash, turning the day over first.
--
-- KEYS[1]  hash push_id -> result of the current business day (push:results)
-- KEYS[2]  the previous day's hash (push:results:prev), expiring ARGV[2] s after the turn
-- KEYS[3]  the business day KEYS[1] belongs to
-- ARGV[1]  the business day now (YYYY-MM-DD); ARGV[2] seconds the previous day is kept
-- ARGV[3..] push_id, result pairs
-- A hash found without its day (written before days were kept) becomes the current day's.
local day = redis.call('GET', KEYS[3])
if day ~= ARGV[1] then
  if day and redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('RENAME', KEYS[1], KEYS[2])
    redis.call('EXPIRE', KEYS[2], ARGV[2])
  end
  redis.call('SET', KEYS[3], ARGV[1])
end
-- In slices: unpack() of thousands of arguments would overflow Lua's stack.
for i = 3, #ARGV, 1000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return 1
