-- Extend the leases this worker holds and record its heartbeat.
-- ARGV: tag, now_ms, deadline_ms, worker, id...
-- A lease is extended only if this worker is its holder: a worker that stalled past its lease
-- and lost the job to another cannot keep extending the new holder's lease.
-- Returns the number of leases extended.
local now = ARGV[2]
local deadline = ARGV[3]
local worker = ARGV[4]
redis.call('ZADD', tag .. ':workers', now, worker)
local leases = tag .. ':leases'
local n = 0
for i = 5, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', tag .. ':job:' .. id, 'w') == worker then
    n = n + redis.call('ZADD', leases, 'XX', 'CH', deadline, id)
  end
end
return n
