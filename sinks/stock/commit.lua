-- Record one step of the stock judge: all or nothing, and only once.
--
-- KEYS[1] state hash (judged, day), KEYS[2] skus hash (sku -> JSON), KEYS[3] alerts sorted
-- set, KEYS[4] unsent hash (alert_id -> document); all share the {stock} hash tag.
-- ARGV[1] the 'judged' minute the caller read ('' for none): a judge that lost its lease and
--         raced a successor changes nothing. ARGV[2] new 'judged', ARGV[3] its 'day'.
-- ARGV[4] JSON {"skus": {sku: document}, "alerts": [[minute, alert_id, document], ...]},
--         documents as JSON text (numbers inside stay exact).
local current = redis.call('HGET', KEYS[1], 'judged') or ''
if current ~= ARGV[1] then
  return 0
end
local body = cjson.decode(ARGV[4])
for sku, doc in pairs(body['skus']) do
  redis.call('HSET', KEYS[2], sku, doc)
end
for _, a in ipairs(body['alerts']) do
  redis.call('ZADD', KEYS[3], string.format('%d', a[1]), a[3])
  redis.call('HSET', KEYS[4], a[2], a[3])
end
redis.call('HSET', KEYS[1], 'judged', ARGV[2], 'day', ARGV[3])
return 1
