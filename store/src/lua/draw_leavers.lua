-- draw_leavers.lua: writes the numbers that pre-queue entries which left
-- before the draw drew, so admission passes over them.
--
-- KEYS[1] round hash   cg:{r}:round
-- KEYS[2] pre-queue    cg:{r}:prequeue   ticket id -> entry (join order)
-- KEYS[3] left         cg:{r}:left       ticket id -> the number it gave up
--                                        (0: a pre-queue entry left before the draw;
--                                        -1: left with no number to pass over)
-- ARGV[1], ARGV[2], ...  pairs: ticket id, the number its entry drew
--                        (crowdgate_protocol::draw, computed by the store
--                        from the sealed draw: Lua has no HMAC-SHA256)
--
-- Returns {verdict, still_unwritten}:
--   'written', n     the given numbers are written; n pre-queue leavers
--                    are still at 0 (0 once every one is written)
--   'not_sealed', 0  the pre-queue is not sealed: nothing is drawn yet
--                    (nothing written)
--   'not_seeded', 0  the round has no data (nothing written)
--
-- Invariants kept: only a ticket that is in the pre-queue and still at 0
-- in `left` is written (so a number once written never changes, and a
-- repeated call writes nothing new); every number written is within the
-- sealed pre-queue's 1..P. advance.lua admits nobody while any pre-queue
-- leaver is still at 0, so no leaver is ever admitted.

local round, prequeue, left = KEYS[1], KEYS[2], KEYS[3]
local r = redis.call('HMGET', round, R.PHASE, R.PREQUEUE_SEALED, R.PREQUEUE_SIZE)
if not r[1] then return {'not_seeded', 0} end
if r[2] ~= '1' then return {'not_sealed', 0} end
local size = int(r[3])

-- Every number is checked before the first write.
for i = 2, #ARGV, 2 do
  local number = tonumber(ARGV[i])
  assert(number and number >= 1 and number <= size, 'draw_leavers.lua: a number outside the pre-queue')
end
for i = 1, #ARGV, 2 do
  local ticket = ARGV[i]
  if redis.call('ZSCORE', prequeue, ticket) and tonumber(redis.call('ZSCORE', left, ticket)) == 0 then
    redis.call('ZADD', left, 'XX', ARGV[i + 1], ticket)
  end
end
-- A 0 that is not a pre-queue entry (written before entries were kept)
-- has no number to pass over: -1, left with no number.
for _, ticket in ipairs(redis.call('ZRANGEBYSCORE', left, 0, 0)) do
  if not redis.call('ZSCORE', prequeue, ticket) then redis.call('ZADD', left, 'XX', -1, ticket) end
end
return {'written', redis.call('ZCOUNT', left, 0, 0)}
