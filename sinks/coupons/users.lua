-- Read users' coupon state: each user's field in its bucket hash, else the string key the
-- state was kept in before buckets (written by an older version, read until rewritten).
--
-- KEYS[1]  any key with the partition's hash tag: it routes the call on Redis Cluster
-- ARGV[1]  bucket key prefix, e.g. "{app}:{p3}:cu:b:"; ARGV[2] old key prefix "{app}:{p3}:cu:u:"
-- ARGV[3]  JSON array of the users; ARGV[4] JSON array of their buckets, in the same order
-- Returns the values in the order of the users, nil where a user has no state.
local users = cjson.decode(ARGV[3])
local buckets = cjson.decode(ARGV[4])
local out = {}
for i = 1, #users do
  local v = redis.call('HGET', ARGV[1] .. buckets[i], users[i])
  if not v then
    v = redis.call('GET', ARGV[2] .. users[i])
  end
  out[i] = v
end
return out
