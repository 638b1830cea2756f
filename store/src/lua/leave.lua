-- leave.lua: a visitor gives up their place in the queue, for good.
--
-- KEYS[1] round hash       cg:{r}:round
-- KEYS[2] pre-queue        cg:{r}:prequeue         ticket id -> entry (join order)
-- KEYS[3] left             cg:{r}:left             ticket id -> the number it gave up
--                                                  (0: a pre-queue entry left before the
--                                                  draw, until the store writes its drawn
--                                                  number: draw_leavers.lua)
-- KEYS[4] pass claims      cg:{r}:pass_claims      ticket id -> claim expiry (Unix ms)
-- KEYS[5] reservations     cg:{r}:reserved         admitted number -> reservation lapse (Unix ms)
-- KEYS[6] investor places  cg:{r}:investor_places  investor -> "<ticket id> <number>"
-- ARGV[1] ticket id
-- ARGV[2] the ticket's queue number, 0 for a pre-queue ticket whose number
--         the caller does not know (before the draw, or not computed)
-- ARGV[3] now, Unix ms
-- ARGV[4] the ticket's investor id, or '' in an anonymous room
--
-- Returns {verdict, at}:
--   'left', number           the place is given up, now or before (leaving
--                            again answers the same); number 0: a pre-queue
--                            place left before the draw
--   'claimed', expires_at_ms the ticket claimed its pass: its turn is under
--                            way (or over), and leaving gives up nothing;
--                            nothing is written
--   'needs_number', 0        a pre-queue ticket given as 0 after the draw:
--                            call again with its drawn number (nothing
--                            written but the clock and the seal)
--   'not_seeded', 0          the round has no data (nothing written)
--
-- What leaving does depends on where the ticket is (after the clock, which
-- this script applies, and the pre-queue's seal, as join.lua does):
--   - a pre-queue ticket before the draw: it keeps its entry (so no other
--     entry, and no number, moves) and is recorded in `left` with number 0;
--     once the pre-queue is sealed the store writes the number that entry
--     drew there (draw_leavers.lua) before any admission, so advance.lua
--     passes over it like any number that left;
--   - a numbered ticket not yet admitted (or a pre-queue ticket after the
--     draw, given with the number it drew): its number is recorded in
--     `left`, and advance.lua passes over it without a reservation;
--   - admitted, pass not claimed: its reservation is removed, so its place
--     under max_active is free for the next batch at once.
-- In every case the ticket is recorded in `left` (so leaving again answers
-- the same) and spent: its pass claim is set to expire now, so a later
-- claim answers 'expired'; and the investor's place is forgotten if it is
-- still this ticket, so joining again takes a new place at the back.
--
-- Invariants kept: a ticket leaves at most once and never after claiming
-- its pass (an active pass is never taken back); nothing moves
-- admitted_up_to or issued, and no number is given to anyone else; the
-- pre-queue's entries never change, so neither does the draw.

local round, prequeue, left, claims, reserved, places =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local ticket, number, now_ms, investor = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
assert(number and number >= 0, 'leave.lua: queue number out of range')
local r = redis.call('HMGET', round, R.PHASE, R.OPENS_AT_MS, R.CLOSES_AT_MS, R.PREQUEUE_SEALED, R.ISSUED,
  R.ADMITTED_UP_TO)
if not r[1] then return {'not_seeded', 0} end

local gone = redis.call('ZSCORE', left, ticket)
if gone then return {'left', tonumber(gone)} end
local claim = redis.call('HGET', claims, ticket)
if claim then return {'claimed', tonumber(claim)} end

local phase = tick(round, r[1], int(r[2]), int(r[3]), now_ms)
seal_prequeue(round, prequeue, phase, r[4], int(r[5]))
if number == 0 and phase ~= P.SCHEDULED and redis.call('ZSCORE', prequeue, ticket) then
  -- Drawn: the number comes from the draw, which Lua does not compute.
  return {'needs_number', 0}
end
if number > 0 and number <= int(r[6]) then
  -- Admitted and unclaimed (a claim would have been found above).
  redis.call('ZREM', reserved, number)
end
redis.call('ZADD', left, number, ticket)
redis.call('HSET', claims, ticket, fmt(now_ms))
if investor ~= '' then
  local place = redis.call('HGET', places, investor)
  if place and string.match(place, '^(%S+) ') == ticket then
    redis.call('HDEL', places, investor)
  end
end
return {'left', number}
