-- prelude.lua: what the round's scripts share, written once. crowdgate-store
-- puts it in front of every script at build time, after the layout's name
-- tables (R round hash, I investment record, L ledger, E settlement entry,
-- J journal entry, A audit entry, P phases, S statuses). It defines helpers
-- only and touches no key but those its callers pass in.
--
-- The clock. A round's times are opens_at_ms and closes_at_ms (Unix ms,
-- 0 = not set); every script takes `now` as an argument, never reads a
-- clock of its own, so a script's answer depends only on its inputs.
--
-- The phase machine. Every phase a script writes goes through move_phase,
-- the one place a transition is allowed:
--   scheduled -> open           the clock (opens_at_ms), or ops (open now)
--   open      -> paused         ops (pause)
--   paused    -> open           ops (resume)
--   open | paused -> full       an investment leaves less under the cap than
--                               the smallest investment (see has_room)
--   full      -> open           an amount is released (a failed settlement),
--                               or ops raise the cap, and room is made
--   any but closed -> closed    the clock (closes_at_ms), or ops (close)
--   closed                      final: a closed round stays closed
--
-- Invariants kept: no other phase change is ever written (move_phase stops
-- the script instead; callers check can_move before their first write, so
-- the refusal never leaves half a change); the pre-queue is sealed once,
-- before any number is issued, so its members own numbers 1..P.

-- A counter field as a number: absent counts as 0; a value that is not a
-- number stays nil, so arithmetic on it stops the script.
local function int(value)
  return tonumber(value or '0')
end

-- A whole number as Redis should store it (never 1e+15 notation).
local function fmt(n)
  return string.format('%d', n)
end

-- Whether a time field (Unix ms, 0 = not set) has come at now_ms.
local function has_come(at_ms, now_ms)
  return at_ms > 0 and now_ms >= at_ms
end

-- The smallest investment a round takes: its minimum rounded up to whole
-- shares. Caps and investments are whole shares, so cap - raised is too.
local function smallest_investment(minimum, price)
  return minimum + (price - minimum % price) % price
end

-- Whether a round has room for one more investment. A round with less left
-- under its cap than the smallest investment is full: nobody can invest
-- what is left, so it must not stay open and keep admitting people.
local function has_room(cap, raised, minimum, price)
  return cap - raised >= smallest_investment(minimum, price)
end

-- The phase the clock says a round stored as `phase` is in at now_ms.
local function phase_at(phase, opens_at, closes_at, now_ms)
  if phase ~= P.CLOSED and has_come(closes_at, now_ms) then return P.CLOSED end
  if phase == P.SCHEDULED and has_come(opens_at, now_ms) then return P.OPEN end
  return phase
end

local MOVES = {
  [P.SCHEDULED] = {[P.OPEN] = true, [P.CLOSED] = true},
  [P.OPEN] = {[P.PAUSED] = true, [P.FULL] = true, [P.CLOSED] = true},
  [P.PAUSED] = {[P.OPEN] = true, [P.FULL] = true, [P.CLOSED] = true},
  [P.FULL] = {[P.OPEN] = true, [P.CLOSED] = true},
  [P.CLOSED] = {},
}

-- Whether the machine allows from -> to (staying put always is).
local function can_move(from, to)
  return from == to or (MOVES[from] ~= nil and MOVES[from][to] == true)
end

-- Writes the round's phase change from -> to; any change the machine does
-- not allow stops the script.
local function move_phase(round, from, to)
  if from == to then return end
  if not can_move(from, to) then
    error('phase machine: no move from ' .. tostring(from) .. ' to ' .. tostring(to))
  end
  redis.call('HSET', round, R.PHASE, to)
end

-- Applies the clock: opens a scheduled round whose opening time has come,
-- closes one whose closing time has. Returns the phase now.
local function tick(round, phase, opens_at, closes_at, now_ms)
  local now_phase = phase_at(phase, opens_at, closes_at, now_ms)
  move_phase(round, phase, now_phase)
  return now_phase
end

-- Seals the pre-queue once the round is past scheduled: its P entries
-- (those that left included, so no other number moves) own numbers 1..P
-- as the draw permutes them (crowdgate_protocol::draw, keyed from the
-- round's draw secret and the entries' digest, both fixed from now on), so
-- `issued` jumps by P and later joiners get P+1, P+2, ... Does nothing
-- while scheduled or once sealed. Returns `issued` afterwards.
local function seal_prequeue(round, prequeue, phase, sealed, issued)
  if phase == P.SCHEDULED or sealed == '1' then return issued end
  local size = redis.call('ZCARD', prequeue)
  assert(size == 0 or issued == 0, 'invariant: numbers were issued before the pre-queue was sealed')
  redis.call('HSET', round, R.PREQUEUE_SEALED, '1', R.PREQUEUE_SIZE, size)
  return redis.call('HINCRBY', round, R.ISSUED, size)
end

-- Forgets expired passes and lapsed reservations, then counts the active
-- investors: live claimed passes + admitted numbers inside their claim window.
local function active_count(active, reserved, now_ms)
  redis.call('ZREMRANGEBYSCORE', active, '-inf', now_ms)
  redis.call('ZREMRANGEBYSCORE', reserved, '-inf', now_ms)
  return redis.call('ZCARD', active) + redis.call('ZCARD', reserved)
end

