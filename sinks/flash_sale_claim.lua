-- Claim units of a flash sale: window, per-user limit and stock checked and reserved atomically.
--
-- KEYS[1] meta hash    KEYS[2] users hash (user -> units held)   KEYS[3] reservations hash
-- KEYS[4] expiry zset (reservation -> expires_at)   KEYS[5] alert outbox list
-- KEYS[6] per-second claimed units hash             KEYS[7] alert guard hash ("once")
-- ARGV[1] now (epoch ms)  ARGV[2] user id  ARGV[3] qty (integer >= 1)
-- Returns {result, reservation_id, expires_at, available, reserved, sold, alerts_queued}.
local now = tonumber(ARGV[1])
local user = ARGV[2]
local qty = tonumber(ARGV[3])
local m = redis.call('HMGET', KEYS[1], 'starts_at', 'ends_at', 'ended_at', 'limit',
  'available', 'ttl_ms', 'stock', 'restocked', 'thresholds', 'sale_id', 'reserved', 'sold', 'sku')
if not m[1] then
  return {'unknown', '', 0, 0, 0, 0, 0}
end
local function refuse(result)
  redis.call('HINCRBY', KEYS[1], 'c:' .. result, 1)
  return {result, '', 0, tonumber(m[5]), tonumber(m[11]), tonumber(m[12]), 0}
end
if now < tonumber(m[1]) then
  return refuse('not_started')
end
if now >= tonumber(m[2]) or (m[3] and now >= tonumber(m[3])) then
  return refuse('ended')
end
local held = tonumber(redis.call('HGET', KEYS[2], user) or '0')
if held + qty > tonumber(m[4]) then
  return refuse('limit_exceeded')
end
local available = tonumber(m[5])
if available < qty then
  return refuse('sold_out')
end

local rid = m[10] .. ':' .. redis.call('HINCRBY', KEYS[1], 'seq', 1)
local expires = now + tonumber(m[6])
available = redis.call('HINCRBY', KEYS[1], 'available', -qty)
local reserved = redis.call('HINCRBY', KEYS[1], 'reserved', qty)
redis.call('HINCRBY', KEYS[1], 'c:ok', 1)
redis.call('HINCRBY', KEYS[2], user, qty)
redis.call('HSET', KEYS[3], rid, cjson.encode({u = user, q = qty, e = expires, s = 'reserved'}))
redis.call('ZADD', KEYS[4], expires, rid)
redis.call('HINCRBY', KEYS[6], math.floor(now / 1000), qty)

-- Alerts: the guard hash decides "once per threshold" for the sale's lifetime.
local total = tonumber(m[7]) + tonumber(m[8])
local queued = 0
local function alert(kind, guard, threshold)
  if redis.call('HSETNX', KEYS[7], guard, now) == 1 then
    redis.call('RPUSH', KEYS[5], cjson.encode({
      alert_id = m[10] .. ':' .. guard, type = kind, sale_id = m[10], sku = m[13],
      threshold_pct = threshold, available = available, total = total, ts = now}))
    queued = queued + 1
  end
end
if available == 0 then
  alert('flash_sale_sold_out', 'sold_out', 0)
end
for pct in string.gmatch(m[9] or '', '[^,]+') do
  if available * 100 <= tonumber(pct) * total then
    alert('flash_sale_low_stock', 'low:' .. pct, tonumber(pct))
  end
end
return {'ok', rid, expires, available, reserved, tonumber(m[12]), queued}
