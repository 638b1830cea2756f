-- invest.lua: records one investment atomically.
--
-- KEYS[1] round hash          cg:{r}:round
-- KEYS[2] investor totals     cg:{r}:investor_totals
-- KEYS[3] pass binding        cg:{r}:pass:<ticket>
-- KEYS[4] investment record   cg:{r}:investment:<id>
-- KEYS[5] settlement stream   cg:{r}:settlement
-- KEYS[6] active passes       cg:{r}:active (an accepted investment finishes the pass's turn)
-- KEYS[7] investor limits     cg:{r}:investor_limits (each investor's own maximum, from
--                             their latest sign-in)
-- ARGV[1] investment id: derived by core from (round, ticket, Idempotency-Key),
--         so every retry of one request names the same record
-- ARGV[2] investor id
-- ARGV[3] amount in pence (integer > 0, already range-checked by core)
-- ARGV[4] request fingerprint (hash of investor id and amount)
-- ARGV[5] now, Unix ms
-- ARGV[6] pass binding lifetime, seconds
-- ARGV[7] ticket id (of the pass)
-- ARGV[8] the investor's own maximum carried by the pass, pence, or -1 for
--         none. The smallest of it, the latest sign-in's (KEYS[7]) and the
--         round's applies: an investor's limit only ever lowers the round's
-- (crowdgate-store's invest.rs builds KEYS and ARGV; nothing else does.)
--
-- Returns {verdict, investor_id, amount, shares, accepted_at_ms, detail}:
--   'accepted'            a new investment (the fields are the record's)
--   'replayed'            the investment this key made before (the same fields)
--   'key_reused'          this key made another investment (other fingerprint)
--   'pass_bound_to_other' the pass is bound to another investor
--   'not_open'            the round is scheduled
--   'closed'              the round is closed, or past its closing time
--   'below_minimum'       detail = the minimum, pence
--   'not_whole_shares'    detail = the share price, pence
--   'over_investor_limit' detail = pence the investor may still invest
--   'round_full'          detail = pence left under the cap
--   'not_seeded'          the round has no data
-- (refusals carry '' and zeros in the investment fields)
--
-- Invariants kept: raised <= cap; raised = accepted - released; an investment
-- id is recorded and published at most once. Rejections write nothing, so a
-- retried rejection is simply evaluated again. Redis does not roll back a
-- script that fails half-way, so every read and check comes before the first
-- write.

local round, totals, binding, record, stream, active = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local limits = KEYS[7]
local investment_id, investor = ARGV[1], ARGV[2]
local amount = tonumber(ARGV[3])
local fingerprint, now_ms = ARGV[4], tonumber(ARGV[5])
local binding_ttl = tonumber(ARGV[6])
local investor_max = tonumber(ARGV[8])
assert(investor_max and investor_max >= -1, 'invest.lua: investor maximum out of range')
-- A pass lives at most a day (ops' pass_ttl_seconds bound), so a week is
-- far past any real binding. Checked here, before any write: `SET ... EX` rejects a lifetime out of
-- range only after the investment would already be recorded.
local MAX_BINDING_TTL_S = 7 * 86400
assert(binding_ttl and binding_ttl >= 1 and binding_ttl <= MAX_BINDING_TTL_S,
  'invest.lua: pass binding lifetime out of range')
local function refuse(verdict, detail)
  return {verdict, '', 0, 0, 0, detail or 0}
end

-- 1. A retried request gets the answer its first attempt got.
local previous = redis.call('HMGET', record, I.FINGERPRINT, I.INVESTOR_ID, I.AMOUNT_PENCE, I.SHARES,
  I.ACCEPTED_AT_MS)
if previous[1] then
  if previous[1] ~= fingerprint then return refuse('key_reused') end
  return {'replayed', previous[2], int(previous[3]), int(previous[4]), int(previous[5]), 0}
end

-- 2. One pass, one investor.
local bound_to = redis.call('GET', binding)
if bound_to and bound_to ~= investor then return refuse('pass_bound_to_other') end

-- 3. The round must be taking investments. The closing time binds even
-- before the admission controller notices it.
local r = redis.call('HMGET', round, R.PHASE, R.CAP_PENCE, R.RAISED_PENCE, R.MIN_INVESTMENT_PENCE,
  R.MAX_INVESTMENT_PENCE, R.SHARE_PRICE_PENCE, R.CLOSES_AT_MS)
if not r[1] then return refuse('not_seeded') end
local phase = phase_at(r[1], 0, int(r[7]), now_ms)
local cap, raised = int(r[2]), int(r[3])
local minimum, maximum, price = int(r[4]), int(r[5]), int(r[6])
if investor_max >= 0 and investor_max < maximum then maximum = investor_max end
local latest_max = tonumber(redis.call('HGET', limits, investor))
if latest_max and latest_max < maximum then maximum = latest_max end
if phase == P.SCHEDULED then return refuse('not_open') end
if phase == P.CLOSED then return refuse('closed') end

-- 4. Limits, then the cap.
if amount < minimum then return refuse('below_minimum', minimum) end
if amount % price ~= 0 then return refuse('not_whole_shares', price) end
local investor_total = int(redis.call('HGET', totals, investor))
if investor_total + amount > maximum then
  return refuse('over_investor_limit', maximum - investor_total)
end
if raised + amount > cap then return refuse('round_full', cap - raised) end
-- Whatever is left below the smallest investment can never be sold: the
-- investment that leaves it fills the round.
local fills = not has_room(cap, raised + amount, minimum, price)
assert(not fills or can_move(phase, P.FULL), 'phase machine: cannot fill a ' .. phase .. ' round')

-- Writes start here; nothing below can fail on valid state.
local shares = amount / price
local amount_s, shares_s, now_s = ARGV[3], fmt(shares), fmt(now_ms)
redis.call('HINCRBY', round, R.RAISED_PENCE, amount)
redis.call('HINCRBY', round, R.ACCEPTED_PENCE, amount)
redis.call('HINCRBY', round, R.ACCEPTED_COUNT, 1)
if investor_total == 0 then redis.call('HINCRBY', round, R.INVESTOR_COUNT, 1) end
if fills then move_phase(round, phase, P.FULL) end
redis.call('HINCRBY', totals, investor, amount)
redis.call('HSET', record, I.INVESTMENT_ID, investment_id, I.INVESTOR_ID, investor,
  I.AMOUNT_PENCE, amount_s, I.SHARES, shares_s, I.STATUS, S.ACCEPTED, I.ACCEPTED_AT_MS, now_s,
  I.FINGERPRINT, fingerprint)
redis.call('XADD', stream, '*', E.INVESTMENT_ID, investment_id, E.INVESTOR_ID, investor,
  E.AMOUNT_PENCE, amount_s, E.SHARES, shares_s, E.ACCEPTED_AT_MS, now_s)
if not bound_to then redis.call('SET', binding, investor, 'EX', binding_ttl) end
redis.call('ZREM', active, ARGV[7])
return {'accepted', investor, amount, shares, now_ms, 0}
