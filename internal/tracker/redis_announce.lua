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

-- Drop a bounded number of expired peers, noting whether the peer itself
-- was one of them.
local selfgone = false
local function trim(z)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. ARGV[7], 'LIMIT', 0, 64)
  if #gone > 0 then
    redis.call('ZREM', z, unpack(gone))
    for i = 1, #gone do
      if gone[i] == old then selfgone = true end
      gone[i] = string.sub(gone[i], 1, 20)
    end
    redis.call('HDEL', P, unpack(gone))
  end
end
trim(S)
trim(L)

local function downloaded()
  return tonumber(redis.call('GET', D) or '0')
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
  local ns, nl, d = redis.call('ZCARD', S), redis.call('ZCARD', L), downloaded()
  if ns + nl == 0 and d == 0 then
    redis.call('ZREM', idx, ih)
  end
  return {ns, nl, d}
end

-- The torrent index, and the TTLs of the torrent's keys, are refreshed
-- once a minute.
local seen = redis.call('ZSCORE', idx, ih)
if not seen and redis.call('ZCARD', idx) >= maxtorrents then
  redis.call('ZREMRANGEBYSCORE', idx, '-inf', now - keep)
  if redis.call('ZCARD', idx) >= maxtorrents then
    return redis.error_reply('too many torrents')
  end
end
local refresh = not seen or tonumber(seen) < now - 60000
if refresh then
  redis.call('ZADD', idx, now, ih)
  redis.call('PEXPIRE', idx, keep)
  redis.call('PEXPIRE', D, keep)
end

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

local cs, cl = redis.call('ZCARD', S), redis.call('ZCARD', L)
local selfS, selfL = 0, 0
if cur and not selfgone then
  if was == 's' then selfS = 1 else selfL = 1 end
end

-- A uniform sample of the pool (seeders and leechers, or leechers only for
-- a seeder) without the peer itself: how many come from each list is drawn
-- as from one list, then each list is sampled. ZRANDMEMBER is quick for a
-- few members of many; for a large part of a list (where Redis 7.0 copies
-- the whole list into a dictionary) the list is read whole and shuffled.
local out = {0, 0, 0}
if numwant > 0 then
  math.randomseed(tonumber(ARGV[14]))
  local ps = 0
  if not seeder then ps = cs - selfS end
  local pl = cl - selfL
  local k = math.min(numwant, ps + pl)
  local xs, rs, rl = 0, ps, pl
  for _ = 1, k do
    if math.random(rs + rl) <= rs then
      xs, rs = xs + 1, rs - 1
    else
      rl = rl - 1
    end
  end
  local function fetch(z, n, size, self)
    if n <= 0 then return end
    if 3 * (n + self) <= size then
      local c = 0
      for _, m in ipairs(redis.call('ZRANDMEMBER', z, n + self)) do
        if c < n and m ~= old then
          out[#out + 1] = m
          c = c + 1
        end
      end
      return
    end
    local all, j = {}, 0
    for _, m in ipairs(redis.call('ZRANGE', z, 0, -1)) do
      if m ~= old then
        j = j + 1
        all[j] = m
      end
    end
    for i = 1, math.min(n, j) do
      local r = math.random(i, j)
      all[i], all[r] = all[r], all[i]
      out[#out + 1] = all[i]
    end
  end
  fetch(S, xs, cs, selfS)
  fetch(L, k - xs, cl, selfL)
end

local member = id .. addr
if cur or cs + cl < maxpeers then
  if cur and (old ~= member or (was == 's') ~= seeder) then
    redis.call('ZREM', was == 's' and S or L, old)
  end
  local z = seeder and S or L
  redis.call('ZADD', z, now + life, member)
  local added = redis.call('HSET', P, id, (seeder and 's' or 'l') .. string.format('%014d%010d', now, gap) .. addr)
  -- A torrent's keys outlive its peers, whose longest life is 2 max gap:
  -- a key gets that TTL when it is made, and again once a minute.
  local keylife = math.max(ttl, 2 * maxgap)
  if refresh then
    redis.call('PEXPIRE', S, keylife)
    redis.call('PEXPIRE', L, keylife)
    redis.call('PEXPIRE', P, keylife)
  else
    if (seeder and cs or cl) == 0 then redis.call('PEXPIRE', z, keylife) end
    if added == 1 then redis.call('PEXPIRE', P, keylife) end
  end
  cs, cl = cs - selfS, cl - selfL
  if seeder then cs = cs + 1 else cl = cl + 1 end
  if seeder and ((cur and was == 'l') or (not cur and event == 'completed')) then
    redis.call('INCR', D)
    redis.call('PEXPIRE', D, keep)
  end
end
out[1], out[2], out[3] = cs, cl, downloaded()
return out
