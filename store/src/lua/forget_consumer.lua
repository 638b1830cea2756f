-- forget_consumer.lua: removes one consumer from the settlement group, only if
-- it holds no pending entries and has been idle long.
--
-- KEYS[1] settlement stream   cg:{r}:settlement
-- ARGV[1] consumer group   ARGV[2] consumer name   ARGV[3] minimum idle, ms
--
-- Returns a verdict:
--   'forgotten'      removed
--   'holds_pending'  kept: it holds pending entries
--   'active'         kept: it was active within ARGV[3] ms
--   'gone'           no such consumer (already removed)
--
-- Invariant kept: no pending entry is ever dropped. XGROUP DELCONSUMER
-- discards the consumer's pending entries (settlements nobody would ever
-- retry), so the checks and the delete are one atomic step: nothing can be
-- delivered to the consumer between them.

local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local min_idle = tonumber(ARGV[3])

if #redis.call('XPENDING', stream, group, '-', '+', 1, consumer) > 0 then
  return 'holds_pending'
end
for _, fields in ipairs(redis.call('XINFO', 'CONSUMERS', stream, group)) do
  local info = {}
  for i = 1, #fields, 2 do info[fields[i]] = fields[i + 1] end
  if info['name'] == consumer then
    if tonumber(info['idle']) < min_idle then return 'active' end
    redis.call('XGROUP', 'DELCONSUMER', stream, group, consumer)
    return 'forgotten'
  end
end
return 'gone'
