-- join.lua: a place in the queue: the investor's own place again, or a new one.
--
-- KEYS[1] round hash       cg:{r}:round
-- KEYS[2] pre-queue        cg:{r}:prequeue         ticket id -> entry (join order, 1..)
-- KEYS[3] investor places  cg:{r}:investor_places  investor -> "<ticket id> <number>"
-- KEYS[4] pass claims      cg:{r}:pass_claims      ticket id -> claim expiry (Unix ms)
-- KEYS[5] investor limits  cg:{r}:investor_limits  investor -> own maximum, pence
-- ARGV[1] ticket id for a new place (random, from core's CSPRNG)
-- ARGV[2] now, Unix ms
-- ARGV[3] investor id, or '' in an anonymous room (a place per call)
-- ARGV[4] the investor's own maximum from this sign-in, pence, or -1 for
--         none: recorded (or cleared) on every join, so the latest sign-in's
--         limit is the one investments are held to
--
-- Returns {verdict, number, ticket id, entry}:
--   'prequeue', 0, t, e   the round is scheduled: t is pre-queue entry e
--   'numbered', n, t, 0   t's queue number is n
--   'rejoined', n, t, e   the investor's existing, unspent place (n = 0: a
--                         pre-queue place, entry e, whose number is drawn
--                         from e at opening: crowdgate_protocol::draw)
--   'identity_required', 0, '', 0   no investor, and the round is not
--                         anonymous (nothing written)
--   'not_seeded', 0, '', 0   the round has no data (nothing written)
--
-- The pre-queue. Each joiner before opening takes the next entry (1, 2,
-- ...: join order) and extends the draw's hash chain over the entries,
-- draw_entries_digest = SHA-1 hex of (digest before .. ' ' .. ticket id),
-- from the commitment the round was seeded with. At the seal the draw's
-- key is derived from the secret and this digest, and entry e's number is
-- a keyed permutation of 1..P (computed outside Redis, by whoever needs it).
--
-- Invariants kept: one live place per investor — joining again from another
-- browser, device or app returns the same ticket and number (or the same
-- lottery entry); only once that place is spent (its pass claim expired: the
-- turn is over) does the investor get a new place, at the back. While the
-- round is scheduled, joiners enter only the pre-queue. Once it is past
-- scheduled (by the clock, which this script applies, or by ops) the
-- pre-queue is sealed (seal_prequeue, the same step advance.lua takes): its
-- entries own numbers 1..P as drawn, and every later joiner gets P+1,
-- P+2, ... in arrival order. Numbers are unique and increasing however many
-- core replicas call this.

local round, prequeue, places, claims, limits = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local ticket, now_ms, investor = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local limit = tonumber(ARGV[4])
assert(limit and limit >= -1, 'join.lua: investor limit out of range')
local r = redis.call('HMGET', round, R.PHASE, R.OPENS_AT_MS, R.CLOSES_AT_MS, R.PREQUEUE_SEALED, R.ISSUED,
  R.IDENTITY, R.DRAW_ENTRIES_DIGEST)
if not r[1] then return {'not_seeded', 0, '', 0} end
-- Absent means required: a round seeded before identity existed.
if investor == '' and r[6] ~= 'anonymous' then return {'identity_required', 0, '', 0} end

if investor ~= '' then
  if limit >= 0 then
    redis.call('HSET', limits, investor, ARGV[4])
  else
    redis.call('HDEL', limits, investor)
  end
  local place = redis.call('HGET', places, investor)
  if place then
    local held, number = string.match(place, '^(%S+) (%d+)$')
    assert(held, 'join.lua: malformed investor place')
    local claim_expiry = redis.call('HGET', claims, held)
    if not claim_expiry or now_ms < tonumber(claim_expiry) then
      local entry = 0
      if number == '0' then entry = tonumber(redis.call('ZSCORE', prequeue, held)) end
      assert(entry, 'join.lua: a pre-queue place with no entry')
      return {'rejoined', tonumber(number), held, entry}
    end
    -- Spent: the turn is over; a new place at the back (below).
  end
end

local phase = tick(round, r[1], int(r[2]), int(r[3]), now_ms)
local verdict, number, entry = nil, 0, 0
if phase == P.SCHEDULED then
  entry = redis.call('ZCARD', prequeue) + 1
  assert(redis.call('ZADD', prequeue, 'NX', entry, ticket) == 1, 'join.lua: a ticket id used twice')
  redis.call('HSET', round, R.DRAW_ENTRIES_DIGEST, redis.sha1hex((r[7] or '') .. ' ' .. ticket))
  verdict = 'prequeue'
else
  seal_prequeue(round, prequeue, phase, r[4], int(r[5]))
  verdict, number = 'numbered', redis.call('HINCRBY', round, R.ISSUED, 1)
end
if investor ~= '' then
  redis.call('HSET', places, investor, ticket .. ' ' .. number)
end
return {verdict, number, ticket, entry}
