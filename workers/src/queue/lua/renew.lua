-- Extend the leases this worker holds and record its heartbeat.
-- ARGV: tag, now_ms (0 = server clock), lease_ms, worker, then pairs: id, lease generation
-- A lease is extended only if this worker holds that very lease (same worker, same generation):
-- a worker that stalled past its lease and lost the job cannot keep the new holder's lease alive.
-- Returns the number of leases extended.
local deadline = now + tonumber(ARGV[3])
local worker = ARGV[4]
redis.call('ZADD', tag .. ':workers', now, worker)
local leases = tag .. ':leases'
local n = 0
for i = 5, #ARGV, 2 do
  local id, gen = ARGV[i], ARGV[i + 1]
  local f = redis.call('HMGET', tag .. ':job:' .. id, 'w', 'g')
  if f[1] == worker and f[2] == gen then
    n = n + redis.call('ZADD', leases, 'XX', 'CH', deadline, id)
  end
end
return n
