-- open_accounts.lua: opens investor accounts, all or none.
--
-- KEYS[1] balances  cg:{r}:balances   investor -> pence
-- ARGV    investor, balance, investor, balance, ...
--
-- Returns {verdict, ...}:
--   {'opened'}                       every account opened
--   {'exists', investor, ...}        these investors already have an
--                                    account; nothing was written
--
-- Invariant kept: an import never half-applies and never overwrites a balance
-- (which settlement may already have debited).

local existing = {'exists'}
for i = 1, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then
    existing[#existing + 1] = ARGV[i]
  end
end
if #existing > 1 then return existing end
for i = 1, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return {'opened'}
