-- Record one judging step of the anomaly judge: all or nothing, and only once.
--
-- KEYS[1] state hash (judged, first, open|<metric>), KEYS[2] anomalies sorted set,
-- KEYS[3] unsent hash (alert_id -> document); all share the {ops} hash tag.
-- ARGV[1] the 'judged' minute the caller read ('' for none): a judge that lost its lease and
--         raced a successor changes nothing. ARGV[2] new 'judged', ARGV[3] 'first'.
-- ARGV[4] JSON {"open": {metric: minute}, "docs": [[minute, alert_id, document], ...]}.
local current = redis.call('HGET', KEYS[1], 'judged') or ''
if current ~= ARGV[1] then
  return 0
end
local body = cjson.decode(ARGV[4])
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, 5) == 'open|' then
    redis.call('HDEL', KEYS[1], f)
  end
end
for metric, minute in pairs(body['open']) do
  redis.call('HSET', KEYS[1], 'open|' .. metric, string.format('%d', minute))
end
for _, d in ipairs(body['docs']) do
  redis.call('ZADD', KEYS[2], string.format('%d', d[1]), d[3])
  redis.call('HSET', KEYS[3], d[2], d[3])
end
redis.call('HSET', KEYS[1], 'judged', ARGV[2], 'first', ARGV[3])
return 1
