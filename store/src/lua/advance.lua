-- advance.lua: the admission controller's one step, and the round's clock.
--
-- KEYS[1] round hash      cg:{r}:round
-- KEYS[2] pre-queue       cg:{r}:prequeue
-- KEYS[3] active passes   cg:{r}:active     ticket id -> claim expiry (Unix ms)
-- KEYS[4] reservations    cg:{r}:reserved   admitted number -> reservation lapse (Unix ms)
-- ARGV[1] now, Unix ms
--
-- First the clock (tick: a due scheduled round opens, a round past its
-- closing time closes) and the pre-queue's seal once the round is past
-- scheduled. Then, if open, admits one batch (rate x interval / 1 min, at
-- least 1 when the rate is not 0) when a whole batch interval has passed
-- since the last.
--
-- Returns {verdict, admitted}:
--   'admitted', n        numbers cursor+1..cursor+n are admitted now
--   'not_open', 0        the round is not open (after the clock)
--   'not_due', 0         less than a batch interval since the last batch
--   'room_full', 0       active investors are at max_active (the interval
--                        is not used up: the next call tries again)
--   'nobody_waiting', 0  every issued number is already admitted (the
--                        interval is used up)
--   'not_seeded', 0      the round has no data (nothing written)
--
-- Invariants kept: admitted_up_to never decreases and never passes issued,
-- so admission follows queue order; active investors (live claimed passes +
-- reservations) never exceed max_active because of an advance; at most one
-- batch per batch interval however many core replicas call this, because
-- the interval check and the advance are one atomic step. A no-show's
-- reservation lapses after claim_window_seconds, so no-shows delay
-- admission by at most that long and never stall it.

local round, prequeue, active, reserved = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now_ms = tonumber(ARGV[1])
local r = redis.call('HMGET', round, R.PHASE, R.ADMITTED_UP_TO, R.ISSUED, R.RATE_PER_MINUTE,
  R.BATCH_INTERVAL_MS, R.LAST_ADVANCE_MS, R.OPENS_AT_MS, R.CLOSES_AT_MS, R.PREQUEUE_SEALED, R.MAX_ACTIVE,
  R.CLAIM_WINDOW_SECONDS)
if not r[1] then return {'not_seeded', 0} end

local phase = tick(round, r[1], int(r[7]), int(r[8]), now_ms)
local issued = seal_prequeue(round, prequeue, phase, r[9], int(r[3]))
if phase ~= P.OPEN then return {'not_open', 0} end

local cursor = int(r[2])
local rate, interval, last = int(r[4]), int(r[5]), int(r[6])
if now_ms - last < interval then return {'not_due', 0} end
local batch = math.floor(rate * interval / 60000)
if batch < 1 and rate > 0 then batch = 1 end
local room = int(r[10]) - active_count(active, reserved, now_ms)
if room <= 0 then return {'room_full', 0} end
if batch > room then batch = room end
local target = math.min(cursor + batch, issued)
redis.call('HSET', round, R.LAST_ADVANCE_MS, fmt(now_ms))
if target <= cursor then return {'nobody_waiting', 0} end

assert(target <= issued and target > cursor, 'invariant: the cursor moves forward, never past issued')
local lapse = now_ms + tonumber(r[11] or '60') * 1000
for number = cursor + 1, target do
  redis.call('ZADD', reserved, lapse, number)
end
redis.call('HSET', round, R.ADMITTED_UP_TO, fmt(target))
return {'admitted', target - cursor}
