-- invest.lua: records one investment atomically.
--
-- KEYS[1] round hash          cg:{r}:round
-- KEYS[2] investor totals     cg:{r}:investor_totals
-- KEYS[3] pass binding        cg:{r}:pass:<ticket>
-- KEYS[4] investment record   cg:{r}:investment:<id>
-- KEYS[5] settlement stream   cg:{r}:settlement
-- KEYS[6] active passes       cg:{r}:active (an accepted investment finishes the pass's turn)
-- ARGV[1] investment id: derived by core from (round, ticket, Idempotency-Key),
--         so every retry of one request names the same record
-- ARGV[2] investor id
-- ARGV[3] amount in pence (integer > 0, already range-checked by core)
-- ARGV[4] request fingerprint (hash of investor id and amount)
-- ARGV[5] now, Unix milliseconds
-- ARGV[6] pass binding lifetime, seconds
-- ARGV[7] ticket id (of the pass)
--
-- Returns {status, code, investment_id, amount, shares, accepted_at_ms, extra}:
--   201 "accepted" | "replayed"  the investment (new, or the one this key made)
--   403 "pass_bound_to_other_investor"
--   409 "round_not_open" | "round_closed" | "round_full" (extra = pence left under the cap)
--   422 "idempotency_key_reused" | "amount_below_minimum" (extra = minimum)
--       | "amount_not_whole_shares" (extra = share price)
--       | "investor_limit_exceeded" (extra = pence the investor may still invest)
--
-- Invariants kept: raised <= cap; raised = accepted - released; an investment
-- id is recorded and published at most once. Rejections write nothing, so a
-- retried rejection is simply evaluated again. Redis does not roll back a
-- script that fails half-way, so every read and check comes before the first
-- write.

local round, totals, binding, record, stream, active = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local investment_id, investor = ARGV[1], ARGV[2]
local amount = tonumber(ARGV[3])
local fingerprint, now_ms = ARGV[4], tonumber(ARGV[5])
local binding_ttl = tonumber(ARGV[6])

-- 1. A retried request gets the answer its first attempt got.
local previous = redis.call('HMGET', record, 'fingerprint', 'amount_pence', 'shares', 'accepted_at_ms')
if previous[1] then
  if previous[1] ~= fingerprint then
    return {422, 'idempotency_key_reused', '', 0, 0, 0, 0}
  end
  return {201, 'replayed', investment_id, tonumber(previous[2]), tonumber(previous[3]), tonumber(previous[4]), 0}
end

-- 2. One pass, one investor.
local bound_to = redis.call('GET', binding)
if bound_to and bound_to ~= investor then
  return {403, 'pass_bound_to_other_investor', '', 0, 0, 0, 0}
end

-- 3. The round must be taking investments.
local r = redis.call('HMGET', round, 'phase', 'cap_pence', 'raised_pence', 'min_investment_pence',
  'max_investment_pence', 'share_price_pence', 'closes_at_ms')
local phase = r[1]
local closes_at = tonumber(r[7] or '0')
-- The closing time binds even before the admission controller notices it.
if closes_at > 0 and now_ms >= closes_at then phase = 'closed' end
local cap, raised = tonumber(r[2]), tonumber(r[3])
local minimum, maximum, price = tonumber(r[4]), tonumber(r[5]), tonumber(r[6])
if phase == 'scheduled' then return {409, 'round_not_open', '', 0, 0, 0, 0} end
if phase == 'closed' then return {409, 'round_closed', '', 0, 0, 0, 0} end

-- 4. Limits, then the cap.
if amount < minimum then return {422, 'amount_below_minimum', '', 0, 0, 0, minimum} end
if amount % price ~= 0 then return {422, 'amount_not_whole_shares', '', 0, 0, 0, price} end
local investor_total = tonumber(redis.call('HGET', totals, investor) or '0')
if investor_total + amount > maximum then
  return {422, 'investor_limit_exceeded', '', 0, 0, 0, maximum - investor_total}
end
if raised + amount > cap then
  return {409, 'round_full', '', 0, 0, 0, cap - raised}
end

-- Writes start here; nothing below can fail on valid state.
local shares = amount / price
local amount_s, shares_s, now_s = ARGV[3], string.format('%d', shares), string.format('%d', now_ms)
redis.call('HINCRBY', round, 'raised_pence', amount)
redis.call('HINCRBY', round, 'accepted_pence', amount)
redis.call('HINCRBY', round, 'accepted_count', 1)
if investor_total == 0 then redis.call('HINCRBY', round, 'investor_count', 1) end
if raised + amount == cap then redis.call('HSET', round, 'phase', 'full') end
redis.call('HINCRBY', totals, investor, amount)
redis.call('HSET', record, 'investment_id', investment_id, 'investor_id', investor,
  'amount_pence', amount_s, 'shares', shares_s, 'status', 'accepted', 'accepted_at_ms', now_s,
  'fingerprint', fingerprint)
redis.call('XADD', stream, '*', 'investment_id', investment_id, 'investor_id', investor,
  'amount_pence', amount_s, 'shares', shares_s, 'accepted_at_ms', now_s)
if not bound_to then redis.call('SET', binding, investor, 'EX', binding_ttl) end
redis.call('ZREM', active, ARGV[7])
return {201, 'accepted', investment_id, amount, shares, now_ms, 0}
