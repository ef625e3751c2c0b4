-- One announce to a RedisStore (see redisstore.go).
-- KEYS: torrent index of the shard, seeders, leechers, peer records,
--       completed downloads.
-- ARGV: info hash, peer id, peer (see below), seeder (1 or 0), event,
--       numwant, now (ms), peer TTL (ms), max gap (ms), the client's known
--       gap (ms, 0 when unknown), torrent TTL (ms), max peers of the
--       torrent, max torrents of the shard, random seed, prefix of the
--       torrent's keys, FirstPeers, RemotePeers, the peer's datacenter and
--       rack ("" when unknown), how many expired peers to drop per list,
--       the announce's owner (8 bytes).
-- Reply: seeders, leechers, downloaded, then up to numwant members, or
-- numwant and the packed lists (see below) to draw them from; or an error
-- "murder: too many torrents", "murder: too many peers" or "murder: not
-- owner" for an announce refused with nothing changed.
--
-- A member names a peer: its id (20 bytes), the length of its compact
-- address (one byte, 6 or 18), the address, the length of its place (one
-- byte), then the place ("DC/RACK", "DC" or ""). The seeders' and
-- leechers' lists hold members scored by when the peer expires (ms); a
-- peer is listed until then. PREFIX seeders:packed and leechers:packed,
-- when they exist, hold the members of those lists end to end: a peer of
-- unknown place with a small swarm gets them whole, which costs Redis far
-- less than picking members one by one in Lua, and the tracker draws
-- from them. A new member is appended to its packed list while the list
-- is small enough to be wanted whole by an announce like this one; any
-- other change deletes the packed list, and the next announce that wants
-- it whole builds it again. Peers of known
-- place are also listed under their datacenter (PREFIX d:DC:s and :l) and
-- rack (PREFIX r:DC/RACK:s and :l), and PREFIX seeded counts the seeders
-- of each datacenter; PREFIX g:DC lists the datacenter's gateways and
-- PREFIX gw every gateway. A peer record (in the hash of records) is 's' or
-- 'l', last announce (14 digits, ms), learned gap (10 digits, ms), the
-- owner of the announce that listed it (8 bytes), then the member without
-- the id.
local idx, S, L, P, D = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local ih, id, suffix = ARGV[1], ARGV[2], ARGV[3]
local seeder = ARGV[4] == '1'
local event = ARGV[5]
local numwant = tonumber(ARGV[6])
local now = tonumber(ARGV[7])
local ttl = tonumber(ARGV[8])
local maxgap = tonumber(ARGV[9])
local cgap = tonumber(ARGV[10])
local T = ARGV[15]
local mydc, myrack = ARGV[18], ARGV[19]
local owner = ARGV[21]
local keylife = math.max(ttl, 2 * maxgap)
local SEEDED, GATEWAYS = T .. 'seeded', T .. 'gw'
local packed = {[S] = T .. 'seeders:packed', [L] = T .. 'leechers:packed'}

-- placeOf returns a member's datacenter and rack.
local function placeOf(m)
  local p = string.sub(m, 23 + string.byte(m, 21))
  local slash = string.find(p, '/', 1, true)
  if slash then return string.sub(p, 1, slash - 1), string.sub(p, slash + 1) end
  return p, ''
end

local function placeKeys(dc, rack, side)
  local k = {T .. 'd:' .. dc .. side}
  if rack ~= '' then k[2] = T .. 'r:' .. dc .. '/' .. rack .. side end
  return k
end

-- placeAdd and placeRemove keep the place lists of member m, a seeder
-- when isS.
local function placeAdd(m, isS, score)
  local dc, rack = placeOf(m)
  if dc == '' then return end
  for i, k in ipairs(placeKeys(dc, rack, isS and ':s' or ':l')) do
    local n = redis.call('ZADD', k, score, m)
    redis.call('PEXPIRE', k, keylife)
    if i == 1 and isS and n == 1 then
      redis.call('HINCRBY', SEEDED, dc, 1)
      redis.call('PEXPIRE', SEEDED, keylife)
    end
  end
end

local function placeRemove(m, isS)
  local dc, rack = placeOf(m)
  if dc == '' then return end
  if redis.call('ZREM', T .. 'g:' .. dc, m) == 1 then
    redis.call('ZREM', GATEWAYS, m)
  end
  for i, k in ipairs(placeKeys(dc, rack, isS and ':s' or ':l')) do
    local n = redis.call('ZREM', k, m)
    if i == 1 and isS and n == 1 and redis.call('HINCRBY', SEEDED, dc, -1) <= 0 then
      redis.call('HDEL', SEEDED, dc)
    end
  end
end

-- The peer's record is read before expired peers are dropped, so that a
-- peer that comes back late, before anyone else announced, keeps its gap.
local cur = redis.call('HGET', P, id)
local was, old, last, gap, curowner = nil, nil, 0, 0, nil
if cur then
  was = string.sub(cur, 1, 1)
  last = tonumber(string.sub(cur, 2, 15))
  gap = tonumber(string.sub(cur, 16, 25))
  curowner = string.sub(cur, 26, 33)
  old = id .. string.sub(cur, 34)
end

-- Drop a bounded number of expired peers, noting whether the peer itself
-- was one of them.
local selfgone = false
local function trim(z)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. ARGV[7], 'LIMIT', '0', ARGV[20])
  if #gone > 0 then
    redis.call('ZREM', z, unpack(gone))
    redis.call('DEL', packed[z])
    for i = 1, #gone do
      if gone[i] == old then selfgone = true end
      placeRemove(gone[i], z == S)
      gone[i] = string.sub(gone[i], 1, 20)
    end
    redis.call('HDEL', P, unpack(gone))
  end
end
trim(S)
trim(L)

-- Only the peer's owner changes or removes it while it is listed; an
-- entry whose time ran out is free.
if cur and not selfgone and curowner ~= owner then
  local z = was == 's' and S or L
  local exp = redis.call('ZSCORE', z, old)
  if exp and tonumber(exp) >= now then
    return redis.error_reply('murder: not owner')
  end
  if exp then
    redis.call('ZREM', z, old)
    redis.call('DEL', packed[z])
    placeRemove(old, was == 's')
  end
  redis.call('HDEL', P, id)
  cur, was, old, last, gap = nil, nil, nil, 0, 0
end

local function downloaded()
  return tonumber(redis.call('GET', D) or '0')
end

if event == 'stopped' then
  if cur then
    local z = was == 's' and S or L
    if redis.call('ZREM', z, old) == 1 then
      redis.call('DEL', packed[z])
      placeRemove(old, was == 's')
    end
    redis.call('HDEL', P, id)
    if was == 'l' and seeder then
      -- finished and left at once, as aria2c does
      redis.call('INCR', D)
      redis.call('PEXPIRE', D, ARGV[11])
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
if not seen and not cur and event == 'completed' then
  -- No torrent is made for a peer nobody listed.
  return {0, 0, 0}
end
if not seen and redis.call('ZCARD', idx) >= tonumber(ARGV[13]) then
  redis.call('ZREMRANGEBYSCORE', idx, '-inf', now - tonumber(ARGV[11]))
  if redis.call('ZCARD', idx) >= tonumber(ARGV[13]) then
    return redis.error_reply('murder: too many torrents')
  end
end
local refresh = not seen or tonumber(seen) < now - 60000
if refresh then
  redis.call('ZADD', idx, now, ih)
  redis.call('PEXPIRE', idx, ARGV[11])
  redis.call('PEXPIRE', D, ARGV[11])
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
if not cur and cs + cl >= tonumber(ARGV[12]) then
  return redis.error_reply('murder: too many peers')
end
local selfS, selfL = 0, 0
if cur and not selfgone then
  if was == 's' then selfS = 1 else selfL = 1 end
end

local out = {0, 0, 0}

-- sample appends to out up to k members of the lists (keys), at random,
-- never the peer itself and only those accept takes. It reads a few
-- random members with ZRANDMEMBER when the lists are large, and the
-- lists whole when they are small or too few random members pass.
-- ZRANDMEMBER is quick for a few members of many; for a large part of a
-- list Redis 7.0 copies the whole list into a dictionary, so such lists
-- are read whole instead.
local card = {[S] = cs, [L] = cl} -- list sizes known so far
-- rand returns a random integer from 0 to n-1 (Park-Miller: cheaper in
-- Lua than math.random).
local rnd
local function rand(n)
  rnd = rnd * 16807 % 2147483647
  return rnd % n
end
local function sample(lists, k, accept)
  if k <= 0 then return 0 end
  if not rnd then rnd = tonumber(ARGV[14]) % 2147483646 + 1 end
  local sizes, n = {}, 0
  for i, z in ipairs(lists) do
    sizes[i] = card[z] or redis.call('ZCARD', z)
    n = n + sizes[i]
  end
  if n == 0 then return 0 end
  if accept == nil and n <= 2 * k + 8 then
    -- Small lists, every member wanted: k draws of a partial shuffle of
    -- the lists read whole, the peer itself put out of the way when drawn.
    local all = redis.call('ZRANGE', lists[1], '0', '-1')
    local m = #all
    for i = 2, #lists do
      for _, v in ipairs(redis.call('ZRANGE', lists[i], '0', '-1')) do
        m = m + 1
        all[m] = v
      end
    end
    local taken, o, x = 0, #out, rnd
    while taken < k and taken < m do
      x = x * 16807 % 2147483647
      local j = taken + 1 + x % (m - taken)
      local v = all[j]
      if v == old then
        all[j], all[m] = all[m], nil
        m = m - 1
      else
        taken = taken + 1
        all[j], all[taken] = all[taken], v
        o = o + 1
        out[o] = v
      end
    end
    rnd = x
    return taken
  end
  local cand = {}
  local function consider(m)
    if m ~= old and (accept == nil or accept(m)) then cand[#cand + 1] = m end
  end
  if n <= 2 * k + 8 then
    for _, z in ipairs(lists) do
      for _, m in ipairs(redis.call('ZRANGE', z, '0', '-1')) do consider(m) end
    end
  else
    -- How many come from each list is drawn as from one list. With no
    -- filter, k draws and one for the peer itself are enough.
    local want, remaining = 2 * k + 8, n
    if accept == nil then want = k + 1 end
    for i, z in ipairs(lists) do
      local c = want
      if i < #lists then
        local left, good = remaining, sizes[i]
        c = 0
        for _ = 1, want do
          if rand(left) < good then
            c, good = c + 1, good - 1
          end
          left = left - 1
        end
        remaining, want = remaining - sizes[i], want - c
      end
      if c > 0 and 3 * c <= sizes[i] then
        -- c distinct members: the first distinct ones of draws with
        -- repetition, which cost Redis no dictionary (ZRANDMEMBER with a
        -- positive count builds one), topped up if too many repeat.
        local seen, distinct = {}, 0
        for _ = 1, 4 do
          if distinct >= c then break end
          local draws = c - distinct + math.ceil(c * c / sizes[i]) + 4
          for _, m in ipairs(redis.call('ZRANDMEMBER', z, -draws)) do
            if distinct < c and not seen[m] then
              seen[m] = true
              distinct = distinct + 1
              consider(m)
            end
          end
        end
      elseif c > 0 then
        local all = redis.call('ZRANGE', z, '0', '-1')
        for j = 1, math.min(c, #all) do
          local r = j + rand(#all - j + 1)
          all[j], all[r] = all[r], all[j]
          consider(all[j])
        end
      end
    end
    if #cand < k then
      cand = {}
      for _, z in ipairs(lists) do
        for _, m in ipairs(redis.call('ZRANGE', z, '0', '-1')) do consider(m) end
      end
      end
  end
  local taken = math.min(k, #cand)
  for i = 1, taken do
    local r = i + rand(#cand - i + 1)
    cand[i], cand[r] = cand[r], cand[i]
    out[#out + 1] = cand[i]
  end
  return taken
end

-- gateway: the peer is its datacenter's gateway (see place.go); becomes:
-- it becomes one with this announce.
local gateway, becomes = false, false
if numwant > 0 or mydc ~= '' then -- a peer of known place may become a gateway
  local pool = {L}
  if not seeder then pool = {S, L} end
  if mydc == '' then
    -- A peer of unknown place gets a uniform sample of the swarm: the
    -- tracker draws it from the packed lists when they are small.
    local n = cl
    if not seeder then n = n + cs end
    if n > 0 and n <= 2 * numwant + 8 then
      out[4] = numwant
      for _, z in ipairs(pool) do
        if card[z] > 0 then
          local p = redis.call('GET', packed[z])
          if not p then
            p = table.concat(redis.call('ZRANGE', z, '0', '-1'))
            redis.call('SET', packed[z], p, 'PX', keylife)
            redis.call('PEXPIRE', z, keylife)
          end
          out[#out + 1] = p
        end
      end
    else
      sample(pool, numwant, nil)
    end
  else
    local firstpeers, remotepeers = tonumber(ARGV[16]), tonumber(ARGV[17])
    -- See "Choosing peers by place" in place.go.
    local function lists(prefix)
      if seeder then return {prefix .. ':l'} end
      return {prefix .. ':l', prefix .. ':s'}
    end
    local ds = redis.call('ZCARD', T .. 'd:' .. mydc .. ':s')
    local seeded = ds > 0
    local mine = cur and not selfgone and placeOf(old) == mydc
    if mine and was == 's' then
      seeded = ds > 1 -- self does not count
    end
    local isGateway = mine and redis.call('ZSCORE', T .. 'g:' .. mydc, old) ~= false
    gateway = not seeder and not seeded and
      (isGateway or redis.call('ZCARD', T .. 'g:' .. mydc) < firstpeers)
    becomes = gateway and not isGateway
    local localwant = numwant
    if gateway then localwant = numwant - math.floor(numwant / 2) end
    local got = 0
    if myrack ~= '' then
      got = got + sample(lists(T .. 'r:' .. mydc .. '/' .. myrack), localwant, nil)
    end
    got = got + sample(lists(T .. 'd:' .. mydc), localwant - got, function(m)
      if myrack == '' then return true end
      local _, rack = placeOf(m)
      return rack ~= myrack
    end)
    local room, r = numwant - got, 0
    if room > 0 then
      if gateway then r = room else r = math.min(room, remotepeers) end
    end
    if r > 0 then
      local function remote(m) return placeOf(m) ~= mydc end
      local mark = got
      if not seeder then
        got = got + sample({S}, r, remote)
      end
      local seededDCs = redis.call('HKEYS', SEEDED)
      local isSeeded = {}
      for _, dc in ipairs(seededDCs) do isSeeded[dc] = true end
      got = got + sample({GATEWAYS}, r - (got - mark), function(m)
        local dc = placeOf(m)
        return dc ~= mydc and not isSeeded[dc]
      end)
      for _, dc in ipairs(seededDCs) do
        if dc ~= mydc then
          got = got + sample({T .. 'd:' .. dc .. ':l'}, r - (got - mark), remote)
        end
      end
      if got == mark then
        -- No seeder and no gateway elsewhere: any remote peer.
        sample({L}, r, remote)
      end
    end
  end
end

local member = id .. suffix
do
  local moved = cur and (old ~= member or (was == 's') ~= seeder)
  if moved then
    local oz = was == 's' and S or L
    if redis.call('ZREM', oz, old) == 1 then
      redis.call('DEL', packed[oz])
      placeRemove(old, was == 's')
    end
  end
  local z = seeder and S or L
  local exp = now + life
  if redis.call('ZADD', z, exp, member) == 1 and redis.call('EXISTS', packed[z]) == 1 then
    -- A list is packed while it is small enough to be wanted whole.
    if redis.call('ZCARD', z) <= 2 * numwant + 8 then
      redis.call('APPEND', packed[z], member)
    else
      redis.call('DEL', packed[z])
    end
  end
  if not cur or moved or selfgone then
    placeAdd(member, seeder, exp)
  end
  if becomes then
    redis.call('ZADD', T .. 'g:' .. mydc, exp, member)
    redis.call('PEXPIRE', T .. 'g:' .. mydc, keylife)
    redis.call('ZADD', GATEWAYS, exp, member)
    redis.call('PEXPIRE', GATEWAYS, keylife)
  end
  local added = redis.call('HSET', P, id, (seeder and 's' or 'l') .. string.format('%014d%010d', now, gap) .. owner .. suffix)
  -- A torrent's keys outlive its peers, whose longest life is 2 max gap:
  -- a key gets that TTL when it is made, and again once a minute.
  if refresh then
    redis.call('PEXPIRE', S, keylife)
    redis.call('PEXPIRE', L, keylife)
    redis.call('PEXPIRE', P, keylife)
    redis.call('PEXPIRE', packed[S], keylife)
    redis.call('PEXPIRE', packed[L], keylife)
  else
    if (seeder and cs or cl) == 0 then redis.call('PEXPIRE', z, keylife) end
    if added == 1 then redis.call('PEXPIRE', P, keylife) end
  end
  cs, cl = cs - selfS, cl - selfL
  if seeder then cs = cs + 1 else cl = cl + 1 end
  if seeder and ((cur and was == 'l') or (not cur and event == 'completed')) then
    redis.call('INCR', D)
    redis.call('PEXPIRE', D, ARGV[11])
  end
end
out[1], out[2], out[3] = cs, cl, downloaded()
return out
