-- Rescue jobs whose lease expired: their worker crashed, was killed, or stalled. Any process
-- may run this, whatever its id, so a fleet restarted after a crash rescues too. The lost attempt
-- counts: its error (class 'lost') is recorded, and a job that has used all its attempts (for
-- example one that kills every worker that runs it) goes to the dead set instead of looping.
-- ARGV: tag, now_ms (0 = server clock), limit
-- Returns 7 fields per rescued job: id, 'rescued' | 'dead', attempt, kind, tenant, worker,
-- lease start ms.
local limit = tonumber(ARGV[3])
local leases = tag .. ':leases'
local out = {}
local ids = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, limit)
-- Rescued jobs go back to the head of their lists; walking the earliest-leased last keeps them
-- in their original order there.
for k = #ids, 1, -1 do
  local id = ids[k]
  redis.call('ZREM', leases, id)
  local jk = tag .. ':job:' .. id
  local f = redis.call('HMGET', jk, 'a', 'm', 't', 'k', 'w', 'l')
  if f[1] then
    local attempt, max, tenant, kind = tonumber(f[1]), tonumber(f[2]), f[3], f[4]
    local worker = f[5] or ''
    release_slots(tenant, 1)
    local err = cjson.encode({
      attempt = attempt,
      at_ms = now,
      worker = worker,
      class = 'lost',
      chain = { 'lease expired: worker ' .. worker ..
        ' stopped renewing it (crashed, killed or stalled)' },
    })
    redis.call('HSET', jk, 'f' .. attempt, err)
    redis.call('HINCRBY', tag .. ':stats', 'rescued', 1)
    local status
    if attempt >= max then
      make_dead(jk, id, now)
      status = 'dead'
    else
      redis.call('HSET', jk, 's', 'ready')
      redis.call('HDEL', jk, 'w')
      make_ready(kind, tenant, id, now, true)
      reclaim_dedupe(jk, id)
      status = 'rescued'
    end
    out[#out + 1] = id
    out[#out + 1] = status
    out[#out + 1] = tostring(attempt)
    out[#out + 1] = kind
    out[#out + 1] = tenant
    out[#out + 1] = worker
    out[#out + 1] = f[6] or '0'
  end
end
return out
