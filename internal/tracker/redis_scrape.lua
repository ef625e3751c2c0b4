-- The counts of one torrent of a RedisStore (see redisstore.go).
-- KEYS: torrent index of the shard, seeders, leechers, completed downloads.
-- ARGV: now (ms), info hash, torrent TTL (ms).
-- Reply: seeders, leechers, downloaded; completed downloads count only
-- within the torrent TTL after the torrent's last announce.
local d = 0
local seen = redis.call('ZSCORE', KEYS[1], ARGV[2])
if seen and tonumber(seen) >= tonumber(ARGV[1]) - tonumber(ARGV[3]) then
  d = tonumber(redis.call('GET', KEYS[4]) or '0')
end
return {redis.call('ZCOUNT', KEYS[2], ARGV[1], '+inf'), redis.call('ZCOUNT', KEYS[3], ARGV[1], '+inf'), d}
