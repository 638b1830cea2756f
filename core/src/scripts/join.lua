-- join.lua: a place in the queue for a new ticket.
--
-- KEYS[1] round hash       cg:{r}:round
-- KEYS[2] pre-queue        cg:{r}:prequeue   ticket id -> lottery score
-- ARGV[1] ticket id (random, from core)
-- ARGV[2] lottery score: a CSPRNG integer below 2^52 (exact as a Lua number)
-- ARGV[3] now, Unix milliseconds
--
-- Returns {0, 0} for a pre-queue place, {1, number} for a numbered place.
--
-- Invariant kept: while the round is scheduled, joiners enter only the
-- pre-queue. When it opens (by the clock, by ops, or first noticed here) the
-- pre-queue is sealed: its members own numbers 1..P in score order (a
-- uniform lottery), and every later joiner gets P+1, P+2, ... in arrival
-- order. Sealing happens once (`prequeue_sealed`), before any number is
-- issued, in whichever script first sees the round not scheduled; advance.lua
-- carries the same step.

local round, prequeue = KEYS[1], KEYS[2]
local ticket, score, now_ms = ARGV[1], ARGV[2], tonumber(ARGV[3])
local r = redis.call('HMGET', round, 'phase', 'opens_at_ms', 'prequeue_sealed')
local phase, opens_at, sealed = r[1], tonumber(r[2] or '0'), r[3] == '1'

if phase == 'scheduled' and opens_at > 0 and now_ms >= opens_at then
  phase = 'open'
  redis.call('HSET', round, 'phase', 'open')
end
if phase == 'scheduled' and not sealed then
  redis.call('ZADD', prequeue, 'NX', score, ticket)
  return {0, 0}
end
if not sealed then
  local size = redis.call('ZCARD', prequeue)
  redis.call('HSET', round, 'prequeue_sealed', '1', 'prequeue_size', size)
  redis.call('HINCRBY', round, 'issued', size)
end
return {1, redis.call('HINCRBY', round, 'issued', 1)}
