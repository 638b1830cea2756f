-- claim.lua: records that an admitted ticket claimed its pass (once).
--
-- KEYS[1] round hash      cg:{r}:round
-- KEYS[2] pass claims     cg:{r}:pass_claims   ticket id -> claim expiry (Unix ms)
-- KEYS[3] active passes   cg:{r}:active        ticket id -> claim expiry (Unix ms)
-- KEYS[4] reservations    cg:{r}:reserved      admitted number -> reservation lapse (Unix ms)
-- ARGV[1] ticket id   ARGV[2] queue number   ARGV[3] now, Unix ms
--
-- Returns {verdict, at}:
--   'granted', expires_at_ms   claimed now, or earlier and still valid (the
--                              same expiry again)
--   'not_admitted', 0          number > admitted_up_to
--   'expired', expired_at_ms   this ticket's pass expired; it is never
--                              claimed again
--   'round_closed', 0          the round is closed (or past its closing time)
--   'room_full', 0             admitted, but the claim window lapsed and the
--                              room is at max_active now: retry shortly
--   'not_seeded', 0            the round has no data
--
-- Invariants kept: one claim per ticket, so passes cannot be farmed to hold
-- more than one active place; active + reserved never exceeds max_active
-- (a claim turns the number's reservation into an active pass; a late claim,
-- after its reservation lapsed, needs a free place).

local round, claims, active, reserved = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ticket, number, now_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local r = redis.call('HMGET', round, R.PHASE, R.ADMITTED_UP_TO, R.PASS_TTL_SECONDS, R.MAX_ACTIVE,
  R.CLOSES_AT_MS)
if not r[1] then return {'not_seeded', 0} end
if phase_at(r[1], 0, int(r[5]), now_ms) == P.CLOSED then return {'round_closed', 0} end
if number > int(r[2]) then return {'not_admitted', 0} end
local previous = redis.call('HGET', claims, ticket)
if previous then
  if now_ms < tonumber(previous) then return {'granted', tonumber(previous)} end
  return {'expired', tonumber(previous)}
end
if redis.call('ZREM', reserved, number) == 0 then
  -- Late: the reservation lapsed (or was never made). Only with a free place.
  if active_count(active, reserved, now_ms) >= int(r[4]) then return {'room_full', 0} end
end
local expires = now_ms + int(r[3]) * 1000
redis.call('HSET', claims, ticket, fmt(expires))
redis.call('ZADD', active, expires, ticket)
return {'granted', expires}
