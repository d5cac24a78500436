-- Record one step of the ROAS judge: the minutes judged, its trailing state and its alerts, all
-- or nothing, once.
--
-- KEYS[1] state hash (judged, below, w:<minute>), KEYS[2] alerts sorted set, KEYS[3] unsent
-- hash (alert_id -> document); all share the {ads} hash tag.
-- ARGV[1] the 'judged' minute the caller read ('' for none): a judge that lost its lease and
--         raced a successor changes nothing. ARGV[2] the new 'judged' minute. ARGV[3] 'below'.
-- ARGV[4] n, the number of window fields that left; ARGV[5] k, of those that entered;
-- ARGV[6..5+n] the fields that left; then k pairs field, sums; then triples minute, alert_id,
-- document.
if (redis.call('HGET', KEYS[1], 'judged') or '') ~= ARGV[1] then
  return 0
end
local n, k = tonumber(ARGV[4]), tonumber(ARGV[5])
for i = 6, 5 + n do
  redis.call('HDEL', KEYS[1], ARGV[i])
end
local first = 6 + n
for i = first, first + 2 * k - 1, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
for i = first + 2 * k, #ARGV, 3 do
  redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i + 2])
  redis.call('HSET', KEYS[3], ARGV[i + 1], ARGV[i + 2])
end
redis.call('HSET', KEYS[1], 'judged', ARGV[2], 'below', ARGV[3])
return 1
