-- settle.lua: settles one accepted investment and acks its stream entry.
--
-- KEYS[1] investment record   cg:{r}:investment:<id>
-- KEYS[2] balances            cg:accounts:balances     investor -> pence, every
--                             round's (an investor's money is theirs)
-- KEYS[3] shares              cg:{r}:shares            investor -> shares
-- KEYS[4] ledger totals       cg:{r}:ledger
-- KEYS[5] journal stream      cg:{r}:journal
-- KEYS[6] round hash          cg:{r}:round
-- KEYS[7] investor totals     cg:{r}:investor_totals
-- KEYS[8] settlement stream   cg:{r}:settlement
-- KEYS[9] accounts totals     cg:accounts              debited_pence, every round's
-- ARGV[1] stream entry id   ARGV[2] consumer group   ARGV[3] now, Unix ms
--
-- Returns {verdict, detail}:
--   'settled', ''          debited, escrow credited, shares allocated, acked
--   'failed', reason       refused ('insufficient_funds'): the amount is
--                          released from the cap (a full round reopens); acked
--   'already', status      settled or failed earlier: acked again, nothing posted
--   'missing', ''          no such investment: not acked (the worker
--                          dead-letters the entry)
-- A record whose amount is not a number is a script error: the entry stays
-- pending, is retried, and is dead-lettered after too many deliveries.
--
-- Invariants kept: an investment is posted at most once (its status is the
-- guard, checked first); sum of investor debits = escrow credits; no balance
-- goes below zero, whichever rounds' settlements interleave (the balance is
-- read and debited in this one script); Σ balances + debited = opened; a failed investment's amount is released from the cap
-- (raised = accepted - released). All reads and checks come before the
-- first write.

local record, balances, shares, ledger, journal = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local round, totals, stream, accounts = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local entry_id, group, now_ms = ARGV[1], ARGV[2], ARGV[3]

local inv = redis.call('HMGET', record, I.STATUS, I.INVESTOR_ID, I.AMOUNT_PENCE, I.SHARES, I.INVESTMENT_ID)
local status, investor, amount_s, shares_s, investment_id = inv[1], inv[2], inv[3], inv[4], inv[5]
if not status then
  return {'missing', ''}
end
if status ~= S.ACCEPTED then
  redis.call('XACK', stream, group, entry_id)
  return {'already', status}
end

local amount, share_count = tonumber(amount_s), tonumber(shares_s)
if not amount or not share_count then
  error('investment ' .. tostring(investment_id) .. ' has amount ' .. tostring(amount_s) ..
    ' and shares ' .. tostring(shares_s))
end
local balance = int(redis.call('HGET', balances, investor))

if balance < amount then
  -- Refused: release the amount so the round can sell it again.
  local phase = redis.call('HGET', round, R.PHASE)
  redis.call('HINCRBY', round, R.RAISED_PENCE, -amount)
  redis.call('HINCRBY', round, R.RELEASED_PENCE, amount)
  redis.call('HINCRBY', totals, investor, -amount)
  -- Any investment was at least the smallest one, so releasing it always
  -- makes room for another (prelude's has_room).
  if phase == P.FULL then move_phase(round, phase, P.OPEN) end
  redis.call('HSET', record, I.STATUS, S.FAILED, I.FAILURE_REASON, 'insufficient_funds',
    I.SETTLED_AT_MS, now_ms)
  redis.call('HINCRBY', ledger, L.FAILED_COUNT, 1)
  redis.call('HINCRBY', ledger, L.FAILED_PENCE, amount)
  redis.call('XACK', stream, group, entry_id)
  return {'failed', 'insufficient_funds'}
end

assert(balance - amount >= 0, 'invariant: no balance below zero')
redis.call('HINCRBY', balances, investor, -amount)
redis.call('HINCRBY', accounts, AC.DEBITED_PENCE, amount)
redis.call('HINCRBY', shares, investor, share_count)
redis.call('HINCRBY', ledger, L.ESCROW_PENCE, amount)
redis.call('HINCRBY', ledger, L.DEBITS_PENCE, amount)
redis.call('HINCRBY', ledger, L.CREDITS_PENCE, amount)
redis.call('HINCRBY', ledger, L.SETTLED_COUNT, 1)
redis.call('HINCRBY', ledger, L.SHARES_ALLOCATED, share_count)
redis.call('XADD', journal, '*', J.INVESTMENT_ID, investment_id, J.DEBIT, 'investor:' .. investor,
  J.CREDIT, 'escrow', J.AMOUNT_PENCE, amount_s, J.SHARES, shares_s, J.AT_MS, now_ms)
redis.call('HSET', record, I.STATUS, S.SETTLED, I.SETTLED_AT_MS, now_ms)
redis.call('XACK', stream, group, entry_id)
return {'settled', ''}
