-- advance.lua: the admission controller's one step, and the round's clock.
--
-- KEYS[1] round hash  cg:{r}:round
-- ARGV[1] now, Unix milliseconds
--
-- First the lifecycle: a `scheduled` round opens once now >= opens_at_ms; any
-- round closes once now >= closes_at_ms (0 = no time set). Then, if open,
-- admits one batch when a whole batch interval has passed since the last.
--
-- Returns how many queue numbers this call admitted (0 when it is not yet
-- time, the room is not open, or nobody is waiting).
--
-- Invariants kept: admitted_up_to never decreases and never passes issued, so
-- admission follows queue order; at most one batch per batch interval however
-- many core replicas call this, because the interval check and the advance are
-- one atomic step.

local now_ms = tonumber(ARGV[1])
local r = redis.call('HMGET', KEYS[1], 'phase', 'admitted_up_to', 'issued', 'rate_per_minute',
  'batch_interval_ms', 'last_advance_ms', 'opens_at_ms', 'closes_at_ms')
local phase = r[1]
local opens_at, closes_at = tonumber(r[7] or '0'), tonumber(r[8] or '0')
if closes_at > 0 and now_ms >= closes_at and phase ~= 'closed' then
  redis.call('HSET', KEYS[1], 'phase', 'closed')
  return 0
end
if phase == 'scheduled' and opens_at > 0 and now_ms >= opens_at then
  phase = 'open'
  redis.call('HSET', KEYS[1], 'phase', 'open')
end
if phase ~= 'open' then return 0 end
local cursor, issued = tonumber(r[2]), tonumber(r[3])
local rate, interval, last = tonumber(r[4]), tonumber(r[5]), tonumber(r[6])
if now_ms - last < interval then return 0 end
local batch = math.floor(rate * interval / 60000)
if batch < 1 and rate > 0 then batch = 1 end
local target = math.min(cursor + batch, issued)
redis.call('HSET', KEYS[1], 'last_advance_ms', string.format('%d', now_ms))
if target <= cursor then return 0 end
redis.call('HSET', KEYS[1], 'admitted_up_to', string.format('%d', target))
return target - cursor
