-- advance.lua: the admission controller's one step, and the round's clock.
--
-- KEYS[1] round hash      cg:{r}:round
-- KEYS[2] pre-queue       cg:{r}:prequeue
-- KEYS[3] active passes   cg:{r}:active     ticket id -> claim expiry (Unix ms)
-- KEYS[4] reservations    cg:{r}:reserved   admitted number -> reservation lapse (Unix ms)
-- ARGV[1] now, Unix milliseconds
--
-- First the lifecycle: a `scheduled` round opens once now >= opens_at_ms; any
-- round closes once now >= closes_at_ms (0 = no time set); a round that is
-- no longer scheduled has its pre-queue sealed (see join.lua). Then, if open,
-- admits one batch when a whole batch interval has passed since the last.
--
-- Active investors = live claimed passes + admitted numbers still inside
-- their claim window (reserved). A batch never takes that past max_active.
-- A no-show's reservation lapses after claim_window_seconds, so no-shows
-- delay admission by at most that long and never stall it.
--
-- Returns how many queue numbers this call admitted (0 when it is not yet
-- time, the room is not open, or nobody is waiting).
--
-- Invariants kept: active passes never exceed max_active because of an
-- advance; admitted_up_to never decreases and never passes issued, so
-- admission follows queue order; at most one batch per batch interval however
-- many core replicas call this, because the interval check and the advance are
-- one atomic step.

local round, prequeue, active, reserved = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now_ms = tonumber(ARGV[1])
local r = redis.call('HMGET', round, 'phase', 'admitted_up_to', 'issued', 'rate_per_minute',
  'batch_interval_ms', 'last_advance_ms', 'opens_at_ms', 'closes_at_ms', 'prequeue_sealed', 'max_active',
  'claim_window_seconds')
local phase = r[1]
local opens_at, closes_at = tonumber(r[7] or '0'), tonumber(r[8] or '0')
if closes_at > 0 and now_ms >= closes_at and phase ~= 'closed' then
  redis.call('HSET', round, 'phase', 'closed')
  return 0
end
if phase == 'scheduled' and opens_at > 0 and now_ms >= opens_at then
  phase = 'open'
  redis.call('HSET', round, 'phase', 'open')
end
if phase ~= 'scheduled' and r[9] ~= '1' then
  -- Seal the pre-queue (same step as join.lua): numbers 1..P are its members.
  local size = redis.call('ZCARD', prequeue)
  redis.call('HSET', round, 'prequeue_sealed', '1', 'prequeue_size', size)
  r[3] = redis.call('HINCRBY', round, 'issued', size)
end
if phase ~= 'open' then return 0 end
local cursor, issued = tonumber(r[2]), tonumber(r[3])
local rate, interval, last = tonumber(r[4]), tonumber(r[5]), tonumber(r[6])
if now_ms - last < interval then return 0 end
local batch = math.floor(rate * interval / 60000)
if batch < 1 and rate > 0 then batch = 1 end
-- Expired passes and lapsed reservations (no-shows) stop counting.
redis.call('ZREMRANGEBYSCORE', active, '-inf', now_ms)
redis.call('ZREMRANGEBYSCORE', reserved, '-inf', now_ms)
local room = tonumber(r[10]) - redis.call('ZCARD', active) - redis.call('ZCARD', reserved)
if room <= 0 then return 0 end
if batch > room then batch = room end
local target = math.min(cursor + batch, issued)
redis.call('HSET', round, 'last_advance_ms', string.format('%d', now_ms))
if target <= cursor then return 0 end
local lapse = now_ms + tonumber(r[11] or '60') * 1000
for number = cursor + 1, target do
  redis.call('ZADD', reserved, lapse, number)
end
redis.call('HSET', round, 'admitted_up_to', string.format('%d', target))
return target - cursor
