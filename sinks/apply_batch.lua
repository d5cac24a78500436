-- Apply one partition's batch of state changes, fenced by its Kafka offset.
--
-- KEYS[1]  fence hash of (group, topic, partition): fields offset, wm
-- ARGV[1]  offset the caller read before computing (-1 for none): the write only lands if
--          the fence still holds it, so a redelivered or concurrent batch changes nothing
-- ARGV[2]  last offset of this batch; ARGV[3] partition watermark after it
-- ARGV[4..] ops: NAME arg... with the arities below; every key shares KEYS[1]'s hash tag
local current = redis.call('HGET', KEYS[1], 'offset') or '-1'
if current ~= ARGV[1] then
  return {0, current}
end
redis.call('HSET', KEYS[1], 'offset', ARGV[2], 'wm', ARGV[3])

local arity = {
  HINCRBY = 3, HSET = 3, HSETNX = 3, HDEL = 2, ZADD = 3, ZREM = 2, ZREMRANGEBYSCORE = 3,
  PEXPIRE = 2, PEXPIREAT = 2, DEL = 1, SET = 2, INCRBY = 2, SADD = 2, RPUSH = 2, XADD = 4,
  HMAX = 3,
}
local i = 4
local n = #ARGV
while i <= n do
  local op = ARGV[i]
  local a = arity[op]
  if a == nil then
    return redis.error_reply('apply_batch: unknown op ' .. tostring(op))
  end
  if op == 'HMAX' then
    -- keep the larger of the stored and given integer
    local old = tonumber(redis.call('HGET', ARGV[i + 1], ARGV[i + 2]) or '-1')
    if tonumber(ARGV[i + 3]) > old then
      redis.call('HSET', ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
    end
  elseif op == 'XADD' then
    -- XADD key maxlen field value  (capped stream, approximate trimming)
    redis.call('XADD', ARGV[i + 1], 'MAXLEN', '~', ARGV[i + 2], '*', ARGV[i + 3], ARGV[i + 4])
  else
    redis.call(op, unpack(ARGV, i + 1, i + a))
  end
  i = i + a + 1
end
return {1, ARGV[2]}
