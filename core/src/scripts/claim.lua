-- claim.lua: records that an admitted ticket claimed its pass (once).
--
-- KEYS[1] round hash      cg:{r}:round
-- KEYS[2] pass claims     cg:{r}:pass_claims   ticket id -> claim expiry (Unix ms)
-- KEYS[3] active passes   cg:{r}:active        ticket id -> claim expiry (Unix ms)
-- KEYS[4] reservations    cg:{r}:reserved      admitted number -> reservation lapse (Unix ms)
-- ARGV[1] ticket id   ARGV[2] queue number   ARGV[3] now, Unix ms
--
-- Returns {status, expires_at_ms}:
--   200  claimed (now, or earlier and still valid: the same expiry again)
--   409  not admitted yet (number > admitted_up_to)
--   410  this ticket's pass expired; it cannot be claimed again
--   423  the round is closed
--   429  admitted, but the claim window lapsed and the room is at
--        max_active now: retry shortly
--
-- Invariants kept: one claim per ticket, so passes cannot be farmed to hold
-- more than one active place; active + reserved never exceeds max_active
-- (a claim turns the number's reservation into an active pass; a late claim,
-- after its reservation lapsed, needs a free place).

local round, claims, active, reserved = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ticket, number, now_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local r = redis.call('HMGET', round, 'phase', 'admitted_up_to', 'pass_ttl_seconds', 'max_active')
if r[1] == 'closed' then return {423, 0} end
if number > tonumber(r[2]) then return {409, 0} end
local previous = redis.call('HGET', claims, ticket)
if previous then
  if now_ms < tonumber(previous) then return {200, tonumber(previous)} end
  return {410, tonumber(previous)}
end
if redis.call('ZREM', reserved, number) == 0 then
  -- Late: the reservation lapsed (or was never made). Only with a free place.
  redis.call('ZREMRANGEBYSCORE', active, '-inf', now_ms)
  redis.call('ZREMRANGEBYSCORE', reserved, '-inf', now_ms)
  local busy = redis.call('ZCARD', active) + redis.call('ZCARD', reserved)
  if busy >= tonumber(r[4]) then return {429, 0} end
end
local expires = now_ms + tonumber(r[3]) * 1000
redis.call('HSET', claims, ticket, string.format('%d', expires))
redis.call('ZADD', active, expires, ticket)
return {200, expires}
