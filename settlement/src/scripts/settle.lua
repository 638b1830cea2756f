-- settle.lua: settles one accepted investment and acks its stream entry.
--
-- KEYS[1] investment record   cg:{r}:investment:<id>
-- KEYS[2] balances            cg:{r}:balances          investor -> pence
-- KEYS[3] shares              cg:{r}:shares            investor -> shares
-- KEYS[4] ledger totals       cg:{r}:ledger
-- KEYS[5] journal stream      cg:{r}:journal
-- KEYS[6] round hash          cg:{r}:round
-- KEYS[7] investor totals     cg:{r}:investor_totals
-- KEYS[8] settlement stream   cg:{r}:settlement
-- ARGV[1] stream entry id   ARGV[2] consumer group   ARGV[3] now, Unix ms
--
-- Returns {outcome, detail}: "settled", "failed" (detail = reason),
-- "already" (settled or failed earlier: acked again, nothing posted), or
-- "missing" (no such investment: the entry is not acked; the worker
-- dead-letters it).
--
-- Invariants kept: an investment is posted at most once (its status is the
-- guard, checked first); sum of investor debits = escrow credits; no balance
-- goes below zero; a failed investment's amount is released from the cap
-- (raised = accepted - released) and a full round reopens. All reads and
-- checks come before the first write.

local record, balances, shares, ledger, journal = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local round, totals, stream = KEYS[6], KEYS[7], KEYS[8]
local entry_id, group, now_ms = ARGV[1], ARGV[2], ARGV[3]

local inv = redis.call('HMGET', record, 'status', 'investor_id', 'amount_pence', 'shares', 'investment_id')
local status, investor, amount_s, shares_s, investment_id = inv[1], inv[2], inv[3], inv[4], inv[5]
if not status then
  return {'missing', ''}
end
if status ~= 'accepted' then
  redis.call('XACK', stream, group, entry_id)
  return {'already', status}
end

local amount = tonumber(amount_s)
local balance = tonumber(redis.call('HGET', balances, investor) or '0')

if balance < amount then
  -- Refused: release the amount so the round can sell it again.
  local phase = redis.call('HGET', round, 'phase')
  redis.call('HINCRBY', round, 'raised_pence', -amount)
  redis.call('HINCRBY', round, 'released_pence', amount)
  redis.call('HINCRBY', totals, investor, -amount)
  if phase == 'full' then redis.call('HSET', round, 'phase', 'open') end
  redis.call('HSET', record, 'status', 'failed', 'failure_reason', 'insufficient_funds',
    'settled_at_ms', now_ms)
  redis.call('HINCRBY', ledger, 'failed_count', 1)
  redis.call('HINCRBY', ledger, 'failed_pence', amount)
  redis.call('XACK', stream, group, entry_id)
  return {'failed', 'insufficient_funds'}
end

redis.call('HINCRBY', balances, investor, -amount)
redis.call('HINCRBY', shares, investor, tonumber(shares_s))
redis.call('HINCRBY', ledger, 'escrow_pence', amount)
redis.call('HINCRBY', ledger, 'debits_pence', amount)
redis.call('HINCRBY', ledger, 'credits_pence', amount)
redis.call('HINCRBY', ledger, 'settled_count', 1)
redis.call('HINCRBY', ledger, 'shares_allocated', tonumber(shares_s))
redis.call('XADD', journal, '*', 'investment_id', investment_id, 'debit', 'investor:' .. investor,
  'credit', 'escrow', 'amount_pence', amount_s, 'shares', shares_s, 'at_ms', now_ms)
redis.call('HSET', record, 'status', 'settled', 'settled_at_ms', now_ms)
redis.call('XACK', stream, group, entry_id)
return {'settled', ''}
