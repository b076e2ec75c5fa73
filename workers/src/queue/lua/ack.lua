-- Record the outcome of a batch of attempts.
-- ARGV: tag, now_ms (0 = server clock), retention_ms, n, then 6 fields per entry:
--   id, lease generation, attempt, outcome (ok | retry | dead | snooze | release),
--   delay_ms (retry and snooze), error json ('' = none; stored as field f<attempt>)
-- An entry whose job is gone, whose lease generation moved on, or whose lease is no longer held
-- (it was rescued after the lease expired) is stale: nothing is changed and 'stale' is returned,
-- so neither a worker that stalled past its lease nor a resent ack can touch a newer lease.
-- Returns one status per entry: ok, retry, dead, snooze, release or stale.
local retention = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local leases = tag .. ':leases'
local stats = tag .. ':stats'
local job_prefix = tag .. ':job:'
local out = {}
-- Counter and per-tenant slot updates are summed over the batch and written once at the end.
local freed = {}
local succeeded, retried = 0, 0
local i = 5
for _ = 1, n do
  local id, gen, attempt, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local due, err = now + tonumber(ARGV[i + 4]), ARGV[i + 5]
  i = i + 6
  local jk = job_prefix .. id
  local cur = redis.call('HMGET', jk, 'g', 't', 'm', 'k')
  if (not cur[1]) or cur[1] ~= gen or redis.call('ZREM', leases, id) == 0 then
    out[#out + 1] = 'stale'
  else
    local tenant, max, kind = cur[2], tonumber(cur[3]), cur[4]
    freed[tenant] = (freed[tenant] or 0) + 1
    if err ~= '' then
      redis.call('HSET', jk, 'f' .. attempt, err)
    end
    if outcome == 'ok' then
      -- The record keeps `w`: who ran the job is worth seeing until it expires.
      if retention > 0 then
        redis.call('HSET', jk, 's', 'succeeded', 'z', now)
        redis.call('PEXPIRE', jk, retention)
      else
        redis.call('DEL', jk)
      end
      succeeded = succeeded + 1
      out[#out + 1] = 'ok'
    elseif outcome == 'retry' and tonumber(attempt) < max then
      redis.call('HSET', jk, 's', 'retrying')
      redis.call('HDEL', jk, 'w')
      redis.call('ZADD', tag .. ':delayed', due, id)
      retried = retried + 1
      out[#out + 1] = 'retry'
    elseif outcome == 'snooze' then
      -- A snooze is not a failure: the attempt is given back.
      redis.call('HINCRBY', jk, 'a', -1)
      redis.call('HSET', jk, 's', 'retrying')
      redis.call('HDEL', jk, 'w')
      redis.call('ZADD', tag .. ':delayed', due, id)
      out[#out + 1] = 'snooze'
    elseif outcome == 'release' then
      -- Leased but not run (shutdown): back to the head of its list, attempt given back.
      redis.call('HINCRBY', jk, 'a', -1)
      redis.call('HSET', jk, 's', 'ready')
      redis.call('HDEL', jk, 'w')
      make_ready(kind, tenant, id, now, true)
      reclaim_dedupe(jk, id)
      out[#out + 1] = 'release'
    else
      make_dead(jk, id, now)
      out[#out + 1] = 'dead'
    end
  end
end
for tenant, n in pairs(freed) do
  release_slots(tenant, n)
end
if succeeded > 0 then
  redis.call('HINCRBY', stats, 'succeeded', succeeded)
end
if retried > 0 then
  redis.call('HINCRBY', stats, 'retried', retried)
end
return out
