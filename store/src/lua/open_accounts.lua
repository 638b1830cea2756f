-- open_accounts.lua: opens investor accounts, all or none.
--
-- KEYS[1] balances        cg:accounts:balances   investor -> pence (every round's)
-- KEYS[2] accounts totals cg:accounts            opened_pence, opened_count, debited_pence
-- ARGV    investor, balance, investor, balance, ...
--
-- Returns {verdict, ...}:
--   {'opened'}                       every account opened
--   {'exists', investor, ...}        these investors already have an
--                                    account; nothing was written
--
-- Invariants kept: an import never half-applies and never overwrites a
-- balance (which settlement may already have debited); Σ balances +
-- debited_pence = opened_pence (the opened total grows with the balances).

local balances, totals = KEYS[1], KEYS[2]
local existing = {'exists'}
for i = 1, #ARGV, 2 do
  if redis.call('HEXISTS', balances, ARGV[i]) == 1 then
    existing[#existing + 1] = ARGV[i]
  end
end
if #existing > 1 then return existing end
local opened = 0
for i = 1, #ARGV, 2 do
  local pence = tonumber(ARGV[i + 1])
  assert(pence and pence >= 0, 'open_accounts.lua: a balance must be whole pence, not below zero')
  opened = opened + pence
end
for i = 1, #ARGV, 2 do
  redis.call('HSET', balances, ARGV[i], ARGV[i + 1])
end
redis.call('HINCRBY', totals, AC.OPENED_PENCE, opened)
redis.call('HINCRBY', totals, AC.OPENED_COUNT, #ARGV / 2)
return {'opened'}
