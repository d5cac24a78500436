-- Read many string keys that share a prefix (and so a hash tag) in one call.
--
-- KEYS[1]  any key with the same hash tag as the prefix: it routes the call on Redis Cluster
-- ARGV[1]  key prefix, e.g. "{app}:{p3}:cu:u:"
-- ARGV[2]  JSON array of the names that follow the prefix
-- Returns the values in the order of the names, nil where a key does not exist (or is not a
-- string), as MGET does.
--
-- One argument instead of one per key: the client packs a command's arguments one by one,
-- which cost more than the reads themselves for batches of thousands of users.
local prefix = ARGV[1]
local names = cjson.decode(ARGV[2])
local out, n = {}, 0
-- MGET in chunks: its semantics (nil for a key of another type), within Lua's stack limit
-- for unpack.
local CHUNK = 1000
for first = 1, #names, CHUNK do
  local chunk = {}
  for i = first, math.min(first + CHUNK - 1, #names) do
    chunk[#chunk + 1] = prefix .. names[i]
  end
  local got = redis.call('MGET', unpack(chunk))
  for i = 1, #chunk do
    n = n + 1
    out[n] = got[i]
  end
end
return out
