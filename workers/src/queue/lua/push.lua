-- Enqueue a batch of jobs.
-- ARGV: tag, now_ms (0 = server clock), n, then 10 fields per job:
--   id, kind, tenant, payload, max_attempts, run_at_ms (0 = now), dedupe key ('' = none),
--   once scope ('' = none), once member, once ttl ms
-- Returns, per job, a status ('new', 'dup' = a job with the dedupe key is waiting, 'once' = already
-- enqueued in this window) and the id of the job that stands for it.
-- The common path (a new job) costs four commands, the rings and the `queued` index being written
-- once per kind per call; a heartbeat of 60,000 jobs is 120 calls.
local n = tonumber(ARGV[3])
local dedupe_key = tag .. ':dedupe'
local out = {}
local expiring = {}
local queued_batch = {}
local job_prefix = tag .. ':job:'
local once_prefix = tag .. ':once:'
local created = 0
local i = 4
for _ = 1, n do
  local id, kind, tenant, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local max, run_at, dedupe = ARGV[i + 4], tonumber(ARGV[i + 5]), ARGV[i + 6]
  local oscope, omember, ottl = ARGV[i + 7], ARGV[i + 8], ARGV[i + 9]
  i = i + 10
  local status, stands_for = 'new', id
  if oscope ~= '' then
    local okey = once_prefix .. oscope
    if redis.call('SADD', okey, omember) == 0 then
      status, stands_for = 'once', ''
    elseif not expiring[okey] then
      -- The window's set expires as a whole, once per script call is enough.
      redis.call('PEXPIRE', okey, ottl, 'NX')
      expiring[okey] = true
    end
  end
  if status == 'new' and dedupe ~= '' then
    if redis.call('HSETNX', dedupe_key, dedupe, id) == 0 then
      local cur = redis.call('HGET', dedupe_key, dedupe)
      if redis.call('EXISTS', job_prefix .. cur) == 1 then
        status, stands_for = 'dup', cur
      else
        -- A stale entry (its job expired or was removed): take it over.
        redis.call('HSET', dedupe_key, dedupe, id)
      end
    end
  end
  if status == 'new' then
    local jk = job_prefix .. id
    if run_at > now then
      redis.call('HSET', jk, 'k', kind, 't', tenant, 'p', payload, 'a', 0, 'm', max,
        's', 'scheduled', 'e', now, 'd', dedupe)
      redis.call('ZADD', tag .. ':delayed', run_at, id)
    else
      redis.call('HSET', jk, 'k', kind, 't', tenant, 'p', payload, 'a', 0, 'm', max,
        's', 'ready', 'e', now, 'd', dedupe)
      make_ready(kind, tenant, id, now, false, queued_batch)
    end
    created = created + 1
  end
  out[#out + 1] = status
  out[#out + 1] = stands_for
end
flush_ready(queued_batch)
if created > 0 then
  redis.call('HINCRBY', tag .. ':stats', 'enqueued', created)
end
return out
