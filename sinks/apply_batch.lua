-- Apply one partition's batch of state changes, fenced by its Kafka offset: all or nothing.
--
-- KEYS[1]  fence hash of (group, topic, partition): fields offset, wm, log
-- ARGV[1]  offset the caller read before computing (-1 for none): the write only lands if
--          the fence still holds it, so a redelivered or concurrent batch changes nothing
-- ARGV[2]  last offset of this batch; ARGV[3] partition watermark after it
-- ARGV[4]  ops as one JSON array: NAME arg... with the arities below; every key shares
--          KEYS[1]'s hash tag. One argument instead of thousands: the client packs far less.
-- ARGV[5]  id of the log (the topic's id) the batch was read from, '' when the broker keeps
--          none: nothing lands on a fence of another log, and the id moves with the fence.
-- ARGV[6..] binary values (packed state): an op's argument [n] stands for ARGV[5 + n]
--          (checked before any write, like the rest).
--
-- Redis keeps the writes a failing script made before it failed, so every check that can
-- fail runs before the first write: known ops, whole arguments, and the type of every key
-- an op needs (a key of another type makes the op fail). Counters cannot overflow: inputs
-- are bounded at validation (docs/guarantees.md). The fence moves last.
local current = redis.call('HGET', KEYS[1], 'offset') or '-1'
local log = redis.call('HGET', KEYS[1], 'log')
if current ~= ARGV[1] or (ARGV[5] ~= '' and log and log ~= ARGV[5]) then
  return {0, current}
end

local arity = {
  HINCRBY = 3, HSET = 3, HSETNX = 3, HDEL = 2, ZADD = 3, ZREM = 2, ZREMRANGEBYSCORE = 3,
  PEXPIRE = 2, PEXPIREAT = 2, DEL = 1, SET = 2, INCRBY = 2, SADD = 2, RPUSH = 2, XADD = 4,
  HMAX = 3, ZINCRBY = 3,
}
-- The type a key must have (or not exist) for the op to succeed; nil: any type will do.
local needs = {
  HINCRBY = 'hash', HSET = 'hash', HSETNX = 'hash', HDEL = 'hash', HMAX = 'hash',
  ZADD = 'zset', ZREM = 'zset', ZREMRANGEBYSCORE = 'zset', ZINCRBY = 'zset', SADD = 'set',
  RPUSH = 'list',
  XADD = 'stream', INCRBY = 'string',
}

local ops = cjson.decode(ARGV[4])
local n = #ops
local seen = {}
local i = 1
while i <= n do
  local op = ops[i]
  local a = arity[op]
  if a == nil then
    return redis.error_reply('apply_batch: unknown op ' .. tostring(op) .. ', nothing written')
  end
  if i + a > n then
    return redis.error_reply('apply_batch: ' .. op .. ' lacks arguments, nothing written')
  end
  for j = i + 2, i + a do
    local v = ops[j]
    if type(v) == 'table' and (type(v[1]) ~= 'number' or ARGV[5 + v[1]] == nil) then
      return redis.error_reply('apply_batch: ' .. op
        .. ' refers to a missing value, nothing written')
    end
  end
  local key = ops[i + 1]
  local want = needs[op]
  if want ~= nil then
    local have = seen[key]
    if have == nil then
      have = redis.call('TYPE', key)['ok']
    end
    if have ~= 'none' and have ~= want then
      return redis.error_reply('apply_batch: WRONGTYPE ' .. key .. ' holds a ' .. have .. ', '
        .. op .. ' needs a ' .. want .. ', nothing written')
    end
    seen[key] = want
  elseif op == 'SET' then
    seen[key] = 'string'
  elseif op == 'DEL' then
    seen[key] = 'none'
  end
  i = i + a + 1
end

-- JSON numbers arrive as Lua doubles; integers must reach Redis without an exponent.
local floor, fmt = math.floor, string.format
local function arg(v)
  if type(v) == 'table' then return ARGV[5 + v[1]] end
  if type(v) == 'number' then
    if v == floor(v) then return fmt('%d', v) end
    return fmt('%.17g', v)
  end
  return v
end

i = 1
local a1, a2, a3
while i <= n do
  local op = ops[i]
  local a = arity[op]
  a1, a2, a3 = arg(ops[i + 1]), arg(ops[i + 2]), arg(ops[i + 3])
  if op == 'HMAX' then
    -- keep the larger of the stored and given integer
    local old = tonumber(redis.call('HGET', a1, a2) or '-1')
    if tonumber(a3) > old then
      redis.call('HSET', a1, a2, a3)
    end
  elseif op == 'XADD' then
    -- XADD key maxlen field value  (capped stream, approximate trimming)
    redis.call('XADD', a1, 'MAXLEN', '~', a2, '*', a3, arg(ops[i + 4]))
  elseif a == 1 then
    redis.call(op, a1)
  elseif a == 2 then
    redis.call(op, a1, a2)
  else
    redis.call(op, a1, a2, a3)
  end
  i = i + a + 1
end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'offset', ARGV[2], 'wm', ARGV[3], 'log', ARGV[5])
else
  redis.call('HSET', KEYS[1], 'offset', ARGV[2], 'wm', ARGV[3])
end
return {1, ARGV[2]}
