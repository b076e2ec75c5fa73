-- Promote due delayed jobs (bounded) and lease up to `want` ready jobs to a worker.
-- ARGV: tag, now_ms (0 = server clock), lease_ms, worker, want, default_cap, quantum,
--       max_promote, max_scan, request id, kind... (in the order the worker serves them)
-- Cost is bounded by max_promote + (number of kinds × max_scan) + want, whatever the backlog:
-- the delayed set is read with LIMIT, rings are rotated a bounded number of times per kind, and
-- ready lists are popped from the head. The caller bounds want and quantum (≤ 1,000) so no
-- `unpack` below can exceed Lua's stack.
--
-- Idempotent per request id: the reply is kept for a minute under the request id, and a retry of
-- the same request (its first reply was lost to a timeout or a dropped connection) gets the same
-- jobs back instead of leasing them to no one.
--
-- Returns 8 fields per leased job: id, kind, tenant, payload, attempt, max_attempts,
-- enqueued_ms, lease generation.
local lease_ms = tonumber(ARGV[3])
local worker = ARGV[4]
local want = tonumber(ARGV[5])
local defcap = tonumber(ARGV[6])
local quantum = tonumber(ARGV[7])
local max_promote = tonumber(ARGV[8])
local max_scan = tonumber(ARGV[9])
local reply_key = tag .. ':fetched:' .. worker .. ':' .. ARGV[10]

local previous = redis.call('LRANGE', reply_key, 0, -1)
if #previous > 0 then
  return previous
end

local deadline = now + lease_ms
local delayed = tag .. ':delayed'
local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, max_promote)
for _, id in ipairs(due) do
  redis.call('ZREM', delayed, id)
  local jk = tag .. ':job:' .. id
  local kt = redis.call('HMGET', jk, 'k', 't')
  if kt[1] then
    redis.call('HSET', jk, 's', 'ready')
    make_ready(kt[1], kt[2], id, now, false)
  end
end

local out = {}
local taken = 0
local running = tag .. ':running'
local caps = tag .. ':caps'
local leases = tag .. ':leases'
local dedupe = tag .. ':dedupe'
local job_prefix = tag .. ':job:'
for k = 11, #ARGV do
  if taken >= want then break end
  local kind = ARGV[k]
  local kk = keys_of(kind)
  local ring = kk.ring
  local queued = kk.queued
  local len = redis.call('LLEN', ring)
  -- Each kind has its own scan budget, so tenants at their cap in one kind cannot use up the
  -- budget of the kinds after it. idle counts tenants visited since the last take: a full lap
  -- without a take means every tenant of this kind is at its cap.
  local scans = 0
  local idle = 0
  while taken < want and len > 0 and idle < len and scans < max_scan do
    scans = scans + 1
    local tenant = redis.call('LMOVE', ring, ring, 'LEFT', 'RIGHT')
    local cap = tonumber(redis.call('HGET', caps, tenant) or defcap)
    local room = math.min(want - taken, quantum)
    if cap > 0 then
      room = math.min(room, cap - tonumber(redis.call('HGET', running, tenant) or '0'))
    end
    if room <= 0 then
      idle = idle + 1
    else
      local rl = kk.ready .. tenant
      local ids = redis.call('LPOP', rl, room)
      if redis.call('LLEN', rl) == 0 then
        -- The tenant was just rotated to the tail: remove it from the ring.
        redis.call('RPOP', ring)
        len = len - 1
      end
      if ids then
        idle = 0
        -- Set-wide updates are made once per group of ids taken from the tenant.
        redis.call('ZREM', queued, unpack(ids))
        local lease_args = {}
        local got = 0
        for _, id in ipairs(ids) do
          local jk = job_prefix .. id
          local f = redis.call('HMGET', jk, 'p', 'm', 'e', 'd')
          if f[1] then
            local attempt = redis.call('HINCRBY', jk, 'a', 1)
            -- The lease generation only ever grows: an ack or renewal carrying an older one
            -- belongs to a lease that no longer exists.
            local gen = redis.call('HINCRBY', jk, 'g', 1)
            redis.call('HSET', jk, 's', 'running', 'w', worker, 'l', now)
            lease_args[#lease_args + 1] = deadline
            lease_args[#lease_args + 1] = id
            got = got + 1
            if f[4] and f[4] ~= '' and redis.call('HGET', dedupe, f[4]) == id then
              redis.call('HDEL', dedupe, f[4])
            end
            out[#out + 1] = id
            out[#out + 1] = kind
            out[#out + 1] = tenant
            out[#out + 1] = f[1]
            out[#out + 1] = tostring(attempt)
            out[#out + 1] = f[2]
            out[#out + 1] = f[3]
            out[#out + 1] = tostring(gen)
          end
        end
        if got > 0 then
          redis.call('ZADD', leases, unpack(lease_args))
          redis.call('HINCRBY', running, tenant, got)
          taken = taken + got
        end
      else
        idle = idle + 1
      end
    end
  end
end

if #out > 0 then
  for i = 1, #out, 1000 do
    redis.call('RPUSH', reply_key, unpack(out, i, math.min(i + 999, #out)))
  end
  redis.call('PEXPIRE', reply_key, 60000)
end
return out
