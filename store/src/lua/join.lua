-- join.lua: a place in the queue for a new ticket.
--
-- KEYS[1] round hash   cg:{r}:round
-- KEYS[2] pre-queue    cg:{r}:prequeue   ticket id -> lottery score
-- ARGV[1] ticket id (random, from core)
-- ARGV[2] lottery score: a CSPRNG integer below 2^52 (exact as a Lua number)
-- ARGV[3] now, Unix ms
--
-- Returns {verdict, number}:
--   'prequeue', 0     the round is scheduled: the ticket is in the lottery
--   'numbered', n     the ticket's queue number
--   'not_seeded', 0   the round has no data (nothing written)
--
-- Invariant kept: while the round is scheduled, joiners enter only the
-- pre-queue. Once it is past scheduled (by the clock, which this script
-- applies, or by ops) the pre-queue is sealed (seal_prequeue, the same step
-- advance.lua takes): its members own numbers 1..P in score order, and every
-- later joiner gets P+1, P+2, ... in arrival order. Numbers are unique and
-- increasing however many core replicas call this.

local round, prequeue = KEYS[1], KEYS[2]
local ticket, score, now_ms = ARGV[1], ARGV[2], tonumber(ARGV[3])
local r = redis.call('HMGET', round, R.PHASE, R.OPENS_AT_MS, R.CLOSES_AT_MS, R.PREQUEUE_SEALED, R.ISSUED)
if not r[1] then return {'not_seeded', 0} end

local phase = tick(round, r[1], int(r[2]), int(r[3]), now_ms)
if phase == P.SCHEDULED then
  redis.call('ZADD', prequeue, 'NX', score, ticket)
  return {'prequeue', 0}
end
seal_prequeue(round, prequeue, phase, r[4], int(r[5]))
return {'numbered', redis.call('HINCRBY', round, R.ISSUED, 1)}
