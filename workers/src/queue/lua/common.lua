-- Shared helpers, prepended to every queue script (see scripts.rs). Every key is built from the
-- namespace tag ARGV[1] = "{ns}", so all keys of a script share one Redis Cluster slot.
local tag = ARGV[1]

-- "Now" in Unix ms. ARGV[2] = 0 means the Redis server's clock, so every worker judges leases and
-- due times by one clock whatever its own says; tests pass an explicit time (a manual clock).
local now = tonumber(ARGV[2])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Makes a job ready: appends (or, for rescued and released jobs, prepends) it to its tenant's
-- list for its kind, puts the tenant in the kind's round-robin ring if the list was empty, and
-- records when it became ready (depth and oldest-age metrics).
-- Per-kind key names, built once per script call (string building is a large share of a
-- script's cost in Redis's Lua).
local kind_keys = {}
local function keys_of(kind)
  local k = kind_keys[kind]
  if not k then
    k = {
      ready = tag .. ':ready:' .. kind .. ':',
      ring = tag .. ':ring:' .. kind,
      queued = tag .. ':queued:' .. kind,
    }
    kind_keys[kind] = k
  end
  return k
end

-- With `batch` (a table), the ring additions and `queued` index entries are collected in it
-- instead, to be written with one command per kind by flush_ready: a heartbeat enqueues
-- thousands of jobs per call. (Scripts run atomically, so nothing sees the lists before.)
local function collect(batch, key, a, b)
  local entries = batch[key]
  if not entries then
    entries = { zset = b ~= nil }
    batch[key] = entries
  end
  entries[#entries + 1] = a
  if b ~= nil then
    entries[#entries + 1] = b
  end
end

local function make_ready(kind, tenant, id, now, front, batch)
  local k = keys_of(kind)
  local rl = k.ready .. tenant
  local len
  if front then
    len = redis.call('LPUSH', rl, id)
  else
    len = redis.call('RPUSH', rl, id)
  end
  if batch then
    if len == 1 then
      collect(batch, k.ring, tenant)
    end
    collect(batch, k.queued, now, id)
  else
    if len == 1 then
      redis.call('RPUSH', k.ring, tenant)
    end
    redis.call('ZADD', k.queued, now, id)
  end
end

-- Writes what make_ready collected, in chunks far below Lua's stack limit.
local function flush_ready(batch)
  for key, entries in pairs(batch) do
    local cmd = entries.zset and 'ZADD' or 'RPUSH'
    for i = 1, #entries, 1000 do
      redis.call(cmd, key, unpack(entries, i, math.min(i + 999, #entries)))
    end
  end
end

-- `n` jobs fewer running for the tenant (the per-tenant cap).
local function release_slots(tenant, n)
  if tenant then
    local left = redis.call('HINCRBY', tag .. ':running', tenant, -n)
    if left <= 0 then
      redis.call('HDEL', tag .. ':running', tenant)
    end
  end
end

-- Moves a job to the dead set and the outbox that copies dead jobs to Postgres.
local function make_dead(jk, id, now)
  redis.call('HSET', jk, 's', 'dead', 'z', now)
  redis.call('HDEL', jk, 'w')
  redis.call('ZADD', tag .. ':dead', now, id)
  redis.call('RPUSH', tag .. ':outbox', id)
  redis.call('HINCRBY', tag .. ':stats', 'dead', 1)
end

-- A job that waits again after having started (rescued from a lost lease, or released at
-- shutdown) takes its dedupe key back if no other job holds it, so enqueueing the same work
-- again is still a no-op while it waits.
local function reclaim_dedupe(jk, id)
  local d = redis.call('HGET', jk, 'd')
  if d and d ~= '' then
    redis.call('HSETNX', tag .. ':dedupe', d, id)
  end
end
