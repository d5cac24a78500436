-- Release reservations (reserved -> available), each at most once.
--
-- KEYS[1] meta hash  KEYS[2] users hash  KEYS[3] reservations hash  KEYS[4] expiry zset
-- ARGV[1] reason: cancel | payment_failed | expired
-- ARGV[2] now (epoch ms)   ARGV[3] most reservations to expire in this call
-- ARGV[4..] reservation ids (reason cancel/payment_failed); with reason 'expired' the ids
--           are those of the expiry zset due at ARGV[2]
-- Returns the number of reservations released by this call.
local reason = ARGV[1]
local now = tonumber(ARGV[2])
local ids
if reason == 'expired' then
  ids = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
else
  ids = {unpack(ARGV, 4)}
end
local released = 0
for _, rid in ipairs(ids) do
  local raw = redis.call('HGET', KEYS[3], rid)
  if raw then
    local r = cjson.decode(raw)
    if r.s == 'reserved' and (reason ~= 'expired' or r.e <= now) then
      r.s = 'released'
      r.why = reason
      redis.call('HSET', KEYS[3], rid, cjson.encode(r))
      redis.call('HINCRBY', KEYS[1], 'reserved', -r.q)
      redis.call('HINCRBY', KEYS[1], 'available', r.q)
      redis.call('HINCRBY', KEYS[1], 'released', r.q)
      redis.call('HINCRBY', KEYS[1], 'released:' .. reason, r.q)
      -- units not paid for give the user's allowance back
      if redis.call('HINCRBY', KEYS[2], r.u, -r.q) <= 0 then
        redis.call('HDEL', KEYS[2], r.u)
      end
      released = released + 1
    end
  end
  redis.call('ZREM', KEYS[4], rid)
end
return released
