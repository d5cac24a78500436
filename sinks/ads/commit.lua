-- Record one step of the ROAS judge: the hours judged and their alerts, all or nothing, once.
--
-- KEYS[1] state hash (judged), KEYS[2] alerts sorted set, KEYS[3] unsent hash (alert_id ->
-- document); all share the {ads} hash tag.
-- ARGV[1] the 'judged' hour the caller read ('' for none): a judge that lost its lease and
--         raced a successor changes nothing. ARGV[2] the new 'judged' hour.
-- ARGV[3..] triples: hour, alert_id, document.
if (redis.call('HGET', KEYS[1], 'judged') or '') ~= ARGV[1] then
  return 0
end
for i = 3, #ARGV, 3 do
  redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i + 2])
  redis.call('HSET', KEYS[3], ARGV[i + 1], ARGV[i + 2])
end
redis.call('HSET', KEYS[1], 'judged', ARGV[2])
return 1
