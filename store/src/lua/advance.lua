-- advance.lua: the admission controller's one step, and the round's clock.
--
-- KEYS[1] round hash      cg:{r}:round
-- KEYS[2] pre-queue       cg:{r}:prequeue
-- KEYS[3] active passes   cg:{r}:active     ticket id -> claim expiry (Unix ms)
-- KEYS[4] reservations    cg:{r}:reserved   admitted number -> reservation lapse (Unix ms)
-- KEYS[5] left            cg:{r}:left       ticket id -> the number it gave up (leave.lua;
--                                            0: a pre-queue entry, number not yet written)
-- ARGV[1] now, Unix ms
--
-- First the clock (tick: a due scheduled round opens, a round past its
-- closing time closes) and the pre-queue's seal once the round is past
-- scheduled. Then, if open, admits one batch when a whole batch interval
-- has passed since the last.
--
-- The batch arithmetic is exact. A batch interval owes rate x interval /
-- 1 min people, rarely a whole number, so the script keeps what is owed in
-- people x ms per minute (60,000 = one person): each due batch adds
-- rate x interval to the carry (admission_carry), admits the whole people
-- in it and carries the rest (under one person) to the next batch. After
-- k batches, k x rate x interval / 60,000 people are owed and the floor of
-- it admitted: admission is always within one person of rate x time (7 a
-- minute in 1 s batches admits one person in each of 7 of every 60
-- batches; 90 a minute, 1 or 2 alternately). A batch cut short by the
-- room's free places (max_active) drops what it could not take, keeping
-- only the fraction: a full room is admission held back, never owed in a
-- burst later. A due batch of under one person ('accruing') only carries.
--
-- A batch of n people admits the next n numbers whose tickets have not
-- left the queue: a number in `left` above the cursor is passed over (the
-- cursor moves past it) without a reservation, and does not count against
-- the batch. At most MAX_SKIPS such numbers are looked at per step; past
-- them the batch stops short, and the next step goes on.
--
-- Returns {verdict, admitted}:
--   'admitted', n        the cursor moved on; n people (the numbers it
--                        passed that had not left) are admitted now, each
--                        with a reservation. n is 0 only when a step
--                        passed MAX_SKIPS numbers that had all left
--   'not_open', 0        the round is not open (after the clock)
--   'not_due', 0         less than a batch interval since the last batch
--   'accruing', 0        a batch was due, but what is owed is still under
--                        one person: carried to the next batch
--   'room_full', 0       active investors are at max_active (the interval
--                        is not used up: the next call tries again)
--   'nobody_waiting', 0  every issued number is already admitted or left
--                        (the interval is used up; the cursor may have
--                        moved past numbers that left)
--   'draw_unmapped', 0   the pre-queue is sealed, but entries that left
--                        before the draw have no number in `left` yet:
--                        the store writes them (draw_leavers.lua) and
--                        steps again (nothing admitted)
--   'not_seeded', 0      the round has no data (nothing written)
--
-- The achieved rate. Every call while the round is open and someone is
-- waiting (issued > admitted_up_to before its step) also measures how fast
-- admission really goes, for an honest wait estimate, in three fields:
--   achieved_rate_milli_per_minute  people per minute x 1000: a normalised
--                                   exponentially weighted mean over elapsed
--                                   time, time constant TAU_MS (60 s)
--   achieved_rate_at_ms             when it was last measured; 0 = not
--                                   measuring
--   achieved_rate_measured_ms       the measured time behind it since the
--                                   round last opened or resumed (or ops
--                                   changed the rate: change.lua sets it to 0)
-- A step's sample is what it let through over the time since the last
-- measurement (dt), in queue numbers, because positions and wait
-- estimates are in queue numbers: a due batch counts as the batch it could
-- take (rate x interval, cut to the room's free places) plus the numbers
-- that left it passed over, also when the queue ran out first (the queue
-- was short, admission was not slow); a batch stopped at MAX_SKIPS counts
-- the numbers it moved; not_due and room_full steps count 0. The mean
-- moves (1 - e^(-dt/tau)) / (1 - e^(-T/tau)) of the way to the sample, T
-- the measured time with dt: the first sample counts whole, early ones are
-- not pulled towards 0, and after a few minutes it is the plain moving
-- average. A measurement starts at the start of the current batch
-- interval, so batches are measured over whole intervals. When nobody
-- waits, measuring stops (at = 0: an idle queue is not counted as zero
-- admissions); when the round is not open it also forgets its history
-- (measured = 0), so after a pause it starts afresh.
-- These fields change only when they must (nothing is written at dt = 0,
-- nor again while paused).
--
-- Invariants kept: admitted_up_to never decreases and never passes issued,
-- so admission follows queue order (numbers that left are passed over,
-- never anyone still waiting); active investors (live claimed passes +
-- reservations) never exceed max_active because of an advance; at most one
-- batch per batch interval slot however many core replicas call this,
-- because the interval check and the advance are one atomic step. A no-show's
-- reservation lapses after claim_window_seconds, so no-shows delay
-- admission by at most that long and never stall it. Elapsed time is
-- measured once however many replicas call: each call measures only the
-- time since achieved_rate_at_ms and moves it to now in the same atomic
-- step (a call at or before it, a replica's clock behind, measures
-- nothing), and each batch is counted by the one step that took it.

local round, prequeue, active, reserved, left = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now_ms = tonumber(ARGV[1])
local r = redis.call('HMGET', round, R.PHASE, R.ADMITTED_UP_TO, R.ISSUED, R.RATE_PER_MINUTE,
  R.BATCH_INTERVAL_MS, R.LAST_ADVANCE_MS, R.OPENS_AT_MS, R.CLOSES_AT_MS, R.PREQUEUE_SEALED, R.MAX_ACTIVE,
  R.CLAIM_WINDOW_SECONDS, R.ACHIEVED_RATE_MILLI_PER_MINUTE, R.ACHIEVED_RATE_AT_MS, R.ACHIEVED_RATE_MEASURED_MS,
  R.ADMISSION_CARRY)
if not r[1] then return {'not_seeded', 0} end

local TAU_MS = 60000
-- The most numbers that left one step passes over (so a step stays short
-- however many leave); the rest wait for the next step.
local MAX_SKIPS = 1000
-- core's admission controller offers a step every 100 ms
-- (core/src/admission.rs, TICK): lateness under a tick and a half is
-- jitter, not a gap.
local SCHEDULE_SLACK_MS = 150
-- One person in the carry's unit (people x ms per minute).
local PERSON = 60000
local measured_at, measured_ms = int(r[13]), int(r[14])

-- Stops measuring; `forget` also drops the history (the round is not open).
local function stop_measuring(forget)
  if measured_at ~= 0 then redis.call('HSET', round, R.ACHIEVED_RATE_AT_MS, '0') end
  if forget and measured_ms ~= 0 then redis.call('HSET', round, R.ACHIEVED_RATE_MEASURED_MS, '0') end
end

local phase = tick(round, r[1], int(r[7]), int(r[8]), now_ms)
local issued = seal_prequeue(round, prequeue, phase, r[9], int(r[3]))
if phase ~= P.OPEN then
  stop_measuring(true)
  return {'not_open', 0}
end
-- Pre-queue entries that left before the draw hold 0 in `left` until the
-- store writes the numbers they drew (draw_leavers.lua): admit nobody
-- until then, or a leaver's number could be admitted.
if redis.call('ZCOUNT', left, 0, 0) > 0 then return {'draw_unmapped', 0} end

local cursor = int(r[2])
local rate, interval, last = int(r[4]), int(r[5]), int(r[6])

-- Folds `allowance` people over the time since the last measurement into
-- the achieved rate (see the header).
local function measure(allowance)
  local since = measured_at
  if since == 0 then since = math.min(math.max(last, now_ms - interval), now_ms) end
  local dt = now_ms - since
  if dt <= 0 then
    if measured_at == 0 then redis.call('HSET', round, R.ACHIEVED_RATE_AT_MS, fmt(since)) end
    return
  end
  local total = measured_ms + dt
  local sample = allowance * 60000 * 1000 / dt
  local weight = (1 - math.exp(-dt / TAU_MS)) / (1 - math.exp(-total / TAU_MS))
  -- 0 < weight <= 1 (dt <= total), so the mean stays between 0 and the
  -- largest sample. Not asserted: a wrong estimate must never stop admission.
  local mean = int(r[12])
  mean = mean + weight * (sample - mean)
  redis.call('HSET', round, R.ACHIEVED_RATE_MILLI_PER_MINUTE, fmt(math.floor(mean + 0.5)),
    R.ACHIEVED_RATE_AT_MS, fmt(now_ms), R.ACHIEVED_RATE_MEASURED_MS, fmt(total))
end

-- One admission step: returns the verdict, how many people it admitted,
-- and how many numbers it could have moved the cursor (what the achieved
-- rate counts).
local function step()
  if now_ms - last < interval then return 'not_due', 0, 0 end
  -- rate <= 10^6 and interval <= 10^4 (ADMISSION_LIMITS), so every value
  -- here stays an exact integer in a Lua number (below 2^53).
  local owed = int(r[15]) + rate * interval
  local batch = math.floor(owed / PERSON)
  local carry = owed - batch * PERSON
  assert(carry >= 0 and carry < PERSON, 'invariant: the carry is under one person')
  if batch > 0 then
    local room = int(r[10]) - active_count(active, reserved, now_ms)
    if room <= 0 then return 'room_full', 0, 0 end
    if batch > room then batch = room end
  end
  -- The batch ends `batch` numbers on, plus one for each number inside it
  -- that left (in order, so one passed over can bring the next inside).
  local target, skip, skips, stopped = cursor + batch, {}, 0, false
  local gone = redis.call('ZRANGEBYSCORE', left, '(' .. fmt(cursor), '+inf', 'WITHSCORES',
    'LIMIT', 0, MAX_SKIPS)
  for i = 2, #gone, 2 do
    local number = tonumber(gone[i])
    if number > target then break end
    if not skip[number] then
      skip[number] = true
      skips = skips + 1
      target = target + 1
    end
    -- Every number looked at was inside: the ones not fetched may be too,
    -- so the batch stops at the last one known.
    if i == #gone and #gone == 2 * MAX_SKIPS then target, stopped = number, true end
  end
  target = math.min(target, issued)
  -- Batches keep to their schedule: the next is due one interval after
  -- this one was due, not after the tick that took it (the controller ticks
  -- every 100 ms, so timing from the tick loses up to a tick per batch and
  -- admits below the rate: 1 s batches ran about 5 % slow, 100 ms ones in
  -- a rehearsal about 20 %). Behind schedule by SCHEDULE_SLACK_MS or more
  -- (the first batch, a pause, a room that was full), the schedule
  -- restarts from now, so nobody is admitted in a burst to catch up; less
  -- is a tick's jitter, caught up by the next batch (with 100 ms batches a
  -- tick a moment early would otherwise cost a batch: 80 % of the rate).
  local due = last + interval
  if now_ms - due >= SCHEDULE_SLACK_MS then due = now_ms end
  redis.call('HSET', round, R.LAST_ADVANCE_MS, fmt(due), R.ADMISSION_CARRY, fmt(carry))
  if batch == 0 then return 'accruing', 0, 0 end
  if target <= cursor then return 'nobody_waiting', 0, batch end

  assert(target <= issued and target > cursor, 'invariant: the cursor moves forward, never past issued')
  local lapse = now_ms + tonumber(r[11] or '60') * 1000
  local admitted = 0
  for number = cursor + 1, target do
    if not skip[number] then
      redis.call('ZADD', reserved, lapse, number)
      admitted = admitted + 1
    end
  end
  redis.call('HSET', round, R.ADMITTED_UP_TO, fmt(target))
  local allowance = batch + skips
  if stopped then allowance = target - cursor end
  if admitted == 0 and target == issued then return 'nobody_waiting', 0, allowance end
  return 'admitted', admitted, allowance
end

local waiting = issued > cursor
local verdict, admitted, allowance = step()
if waiting then measure(allowance) else stop_measuring(false) end
return {verdict, admitted}
