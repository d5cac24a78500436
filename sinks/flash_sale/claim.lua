-- Claim units of a flash sale: window, per-user limit and stock checked and reserved atomically,
-- for a group of claims in arrival order (one call per group: the claim path's group commit).
--
-- KEYS[1] meta hash    KEYS[2] users hash (user -> units held)   KEYS[3] reservations hash
-- KEYS[4] expiry zset (reservation -> expires_at)   KEYS[5] alert outbox list
-- KEYS[6] per-second claimed units hash             KEYS[7] alert guard hash ("once")
-- ARGV[1] now (epoch ms), then per claim: user id, qty (integer >= 1)
-- Returns, per claim, {result, reservation_id, expires_at, available, reserved, sold,
-- alerts_queued} flattened into one array.
local now = tonumber(ARGV[1])
local m = redis.call('HMGET', KEYS[1], 'starts_at', 'ends_at', 'ended_at', 'limit',
  'available', 'ttl_ms', 'stock', 'restocked', 'thresholds', 'sale_id', 'reserved', 'sold', 'sku',
  'seq')
local out = {}
local n = (#ARGV - 1) / 2
if not m[1] then
  for _ = 1, n do
    for _, v in ipairs({'unknown', '', 0, 0, 0, 0, 0}) do out[#out + 1] = v end
  end
  return out
end

local available = tonumber(m[5])
local reserved = tonumber(m[11])
local sold = tonumber(m[12])
local seq = tonumber(m[14] or '0')
local limit = tonumber(m[4])
local expires = now + tonumber(m[6])
local total = tonumber(m[7]) + tonumber(m[8])
local closed = nil
if now < tonumber(m[1]) then
  closed = 'not_started'
elseif now >= tonumber(m[2]) or (m[3] and now >= tonumber(m[3])) then
  closed = 'ended'
end
local counts = {}
local units = 0

local function alert(kind, guard, threshold)
  if redis.call('HSETNX', KEYS[7], guard, now) == 1 then
    redis.call('RPUSH', KEYS[5], cjson.encode({
      alert_id = m[10] .. ':' .. guard, type = kind, sale_id = m[10], sku = m[13],
      threshold_pct = threshold, available = available, total = total, ts = now}))
    return 1
  end
  return 0
end

local function push(result, rid, exp, queued)
  counts[result] = (counts[result] or 0) + 1
  out[#out + 1] = result
  out[#out + 1] = rid
  out[#out + 1] = exp
  out[#out + 1] = available
  out[#out + 1] = reserved
  out[#out + 1] = sold
  out[#out + 1] = queued
end

for i = 0, n - 1 do
  local user = ARGV[2 + 2 * i]
  local qty = tonumber(ARGV[3 + 2 * i])
  if closed then
    push(closed, '', 0, 0)
  elseif tonumber(redis.call('HGET', KEYS[2], user) or '0') + qty > limit then
    push('limit_exceeded', '', 0, 0)
  elseif available < qty then
    push('sold_out', '', 0, 0)
  else
    seq = seq + 1
    local rid = m[10] .. ':' .. seq
    available = available - qty
    reserved = reserved + qty
    units = units + qty
    redis.call('HINCRBY', KEYS[2], user, qty)
    redis.call('HSET', KEYS[3], rid, cjson.encode({u = user, q = qty, e = expires, s = 'reserved'}))
    redis.call('ZADD', KEYS[4], expires, rid)
    -- Alerts: the guard hash decides "once per threshold" for the sale's lifetime.
    local queued = 0
    if available == 0 then
      queued = queued + alert('flash_sale_sold_out', 'sold_out', 0)
    end
    for pct in string.gmatch(m[9] or '', '[^,]+') do
      if available * 100 <= tonumber(pct) * total then
        queued = queued + alert('flash_sale_low_stock', 'low:' .. pct, tonumber(pct))
      end
    end
    push('ok', rid, expires, queued)
  end
end

if units > 0 then
  redis.call('HINCRBY', KEYS[1], 'available', -units)
  redis.call('HINCRBY', KEYS[1], 'reserved', units)
  redis.call('HSET', KEYS[1], 'seq', seq)
  redis.call('HINCRBY', KEYS[6], math.floor(now / 1000), units)
end
for result, c in pairs(counts) do
  redis.call('HINCRBY', KEYS[1], 'c:' .. result, c)
end
return out
