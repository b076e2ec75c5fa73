-- Enqueue a batch of jobs.
-- ARGV: tag, now_ms, n, then 10 fields per job:
--   id, kind, tenant, payload, max_attempts, run_at_ms (0 = now), dedupe key ('' = none),
--   once scope ('' = none), once member, once ttl ms
-- Returns, per job, a status ('new', 'dup' = a job with the dedupe key is waiting, 'once' = already
-- enqueued in this window) and the id of the job that stands for it.
local now = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local out = {}
local i = 4
for _ = 1, n do
  local id, kind, tenant, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local max, run_at, dedupe = ARGV[i + 4], tonumber(ARGV[i + 5]), ARGV[i + 6]
  local oscope, omember, ottl = ARGV[i + 7], ARGV[i + 8], ARGV[i + 9]
  i = i + 10
  local status, stands_for = 'new', id
  if oscope ~= '' then
    local okey = tag .. ':once:' .. oscope
    local prev = redis.call('HGET', okey, omember)
    if prev then
      status, stands_for = 'once', prev
    else
      redis.call('HSET', okey, omember, id)
      redis.call('PEXPIRE', okey, ottl, 'NX')
    end
  end
  if status == 'new' and dedupe ~= '' then
    local cur = redis.call('HGET', tag .. ':dedupe', dedupe)
    if cur and redis.call('EXISTS', tag .. ':job:' .. cur) == 1 then
      status, stands_for = 'dup', cur
    else
      redis.call('HSET', tag .. ':dedupe', dedupe, id)
    end
  end
  if status == 'new' then
    local jk = tag .. ':job:' .. id
    if run_at > now then
      redis.call('HSET', jk, 'k', kind, 't', tenant, 'p', payload, 'a', 0, 'm', max,
        's', 'scheduled', 'e', now, 'd', dedupe)
      redis.call('ZADD', tag .. ':delayed', run_at, id)
    else
      redis.call('HSET', jk, 'k', kind, 't', tenant, 'p', payload, 'a', 0, 'm', max,
        's', 'ready', 'e', now, 'd', dedupe)
      make_ready(kind, tenant, id, now, false)
    end
    redis.call('HINCRBY', tag .. ':stats', 'enqueued', 1)
  end
  out[#out + 1] = status
  out[#out + 1] = stands_for
end
return out
