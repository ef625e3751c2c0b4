-- One announce to a RedisStore (see redisstore.go).
-- KEYS: torrent index of the shard, seeders, leechers, peer records,
--       completed downloads.
-- ARGV: info hash, peer id, compact address, seeder (1 or 0), event,
--       numwant, now (ms), peer TTL (ms), max gap (ms), the client's known
--       gap (ms, 0 when unknown), torrent TTL (ms), max peers of the
--       torrent, max torrents of the shard, random seed.
-- Reply: seeders, leechers, downloaded, then up to numwant peers, each the
--        peer id followed by its compact address.
-- A peer is listed until its score (when it expires, ms) is in the past.
-- A peer record is: 's' or 'l', last announce (14 digits, ms), learned
-- gap (10 digits, ms), compact address.
local idx, S, L, P, D = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local ih, id, addr = ARGV[1], ARGV[2], ARGV[3]
local seeder = ARGV[4] == '1'
local event = ARGV[5]
local numwant = tonumber(ARGV[6])
local now = tonumber(ARGV[7])
local ttl = tonumber(ARGV[8])
local maxgap = tonumber(ARGV[9])
local cgap = tonumber(ARGV[10])
local keep = tonumber(ARGV[11])
local maxpeers = tonumber(ARGV[12])
local maxtorrents = tonumber(ARGV[13])
math.randomseed(tonumber(ARGV[14]))

-- The peer's record is read before expired peers are dropped, so that a
-- peer that comes back late, before anyone else announced, keeps its gap.
local cur = redis.call('HGET', P, id)
local was, old, last, gap = nil, nil, 0, 0
if cur then
  was = string.sub(cur, 1, 1)
  last = tonumber(string.sub(cur, 2, 15))
  gap = tonumber(string.sub(cur, 16, 25))
  old = id .. string.sub(cur, 26)
end

-- Drop a bounded number of expired peers.
local function trim(z)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. ARGV[7], 'LIMIT', 0, 64)
  if #gone > 0 then
    redis.call('ZREM', z, unpack(gone))
    for i = 1, #gone do gone[i] = string.sub(gone[i], 1, 20) end
    redis.call('HDEL', P, unpack(gone))
  end
end
trim(S)
trim(L)

local function counts()
  return redis.call('ZCOUNT', S, ARGV[7], '+inf'), redis.call('ZCOUNT', L, ARGV[7], '+inf'),
    tonumber(redis.call('GET', D) or '0')
end

if event == 'stopped' then
  if cur then
    redis.call('ZREM', was == 's' and S or L, old)
    redis.call('HDEL', P, id)
    if was == 'l' and seeder then
      -- finished and left at once, as aria2c does
      redis.call('INCR', D)
      redis.call('PEXPIRE', D, keep)
    end
  end
  local ns, nl, d = counts()
  if ns + nl == 0 and d == 0 then
    redis.call('ZREM', idx, ih)
  end
  return {ns, nl, d}
end

if not redis.call('ZSCORE', idx, ih) then
  if redis.call('ZCARD', idx) >= maxtorrents then
    redis.call('ZREMRANGEBYSCORE', idx, '-inf', now - keep)
    if redis.call('ZCARD', idx) >= maxtorrents then
      return redis.error_reply('too many torrents')
    end
  end
end
redis.call('ZADD', idx, now, ih)
redis.call('PEXPIRE', idx, keep)

-- The peer's lifetime: two of its intervals (see MemStore).
if cur then
  local og = gap
  if og == 0 then og = cgap end
  if now > last + math.max(ttl, 2 * og) and now - last > maxgap then
    gap = 0 -- expired and forgotten, as MemStore forgets a dropped peer
  elseif event == '' then
    gap = math.max(gap, math.min(now - last, maxgap))
  end
end
local g = gap
if g == 0 then g = cgap end
local life = math.max(ttl, 2 * g)

-- A uniform sample of the pool (seeders and leechers, or leechers only for
-- a seeder) without the peer itself: how many come from each list is drawn
-- as from one list, then ZRANDMEMBER picks them.
local out = {0, 0, 0}
if numwant > 0 then
  local selfS, selfL = 0, 0
  if cur and redis.call('ZSCORE', was == 's' and S or L, old) then
    if was == 's' then selfS = 1 else selfL = 1 end
  end
  local ps = 0
  if not seeder then ps = redis.call('ZCARD', S) - selfS end
  local pl = redis.call('ZCARD', L) - selfL
  local k = math.min(numwant, ps + pl)
  local xs, rs, rl = 0, ps, pl
  for _ = 1, k do
    if math.random(rs + rl) <= rs then
      xs, rs = xs + 1, rs - 1
    else
      rl = rl - 1
    end
  end
  local function fetch(z, n, self)
    if n <= 0 then return end
    local c = 0
    for _, m in ipairs(redis.call('ZRANDMEMBER', z, n + self)) do
      if c < n and m ~= old then
        out[#out + 1] = m
        c = c + 1
      end
    end
  end
  fetch(S, xs, selfS)
  fetch(L, k - xs, selfL)
end

local member = id .. addr
local full = false
if cur then
  if old ~= member or (was == 's') ~= seeder then
    redis.call('ZREM', was == 's' and S or L, old)
  end
elseif redis.call('ZCARD', S) + redis.call('ZCARD', L) >= maxpeers then
  full = true
end
if not full then
  redis.call('ZADD', seeder and S or L, now + life, member)
  redis.call('HSET', P, id, (seeder and 's' or 'l') .. string.format('%014d%010d', now, gap) .. addr)
  -- A torrent's keys live as long as its longest-lived peer.
  for _, k in ipairs({S, L, P}) do
    local t = redis.call('PTTL', k)
    if t ~= -2 and t < life then redis.call('PEXPIRE', k, life) end
  end
end
if seeder and ((cur and was == 'l') or (not cur and event == 'completed')) then
  redis.call('INCR', D)
end
redis.call('PEXPIRE', D, keep)
out[1], out[2], out[3] = counts()
return out
