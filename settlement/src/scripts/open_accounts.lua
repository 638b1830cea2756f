-- open_accounts.lua: opens investor accounts, all or none.
--
-- KEYS[1] balances  cg:{r}:balances   investor -> pence
-- ARGV    investor, balance, investor, balance, ...
--
-- Returns the investors that already have an account (and then writes
-- nothing), or an empty list after opening every account.
--
-- Invariant kept: an import never half-applies and never overwrites a balance
-- (which settlement may already have debited).

local existing = {}
for i = 1, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then
    table.insert(existing, ARGV[i])
  end
end
if #existing > 0 then return existing end
for i = 1, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return {}
