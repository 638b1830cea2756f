-- create.lua: creates a round from ops' settings, with its audit entry, or
-- finds that it exists.
--
-- KEYS[1] round hash          cg:{r}:round
-- KEYS[2] audit stream        cg:{r}:audit
-- KEYS[3] live rounds         cg:rounds (a set of round ids)
-- KEYS[4] archived rounds     cg:rounds:archived
-- ARGV[1] operator name (from the ops token)
-- ARGV[2] now, Unix ms
-- ARGV[3..] field, value pairs: the whole round hash of a new round (its
--           settings, counters at zero and the draw's secret; validated and
--           built by core through crowdgate-store's create.rs)
--
-- Returns {verdict, detail}:
--   'created', audit entry id
--   'exists', ''        a round with this id exists (live or archived):
--                       nothing written
--
-- Invariants kept: a round id names one round for good (an archived id is
-- never reused, so its records and books are never mixed with a new
-- round's); a round is in the live set exactly when its hash exists and
-- it is not archived; the creation and its audit entry are written together.
-- The audit entry lists the settings, never the draw's secret.

local round, audit, live, archived = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local operator, now_ms = ARGV[1], ARGV[2]
local id = string.match(round, '{(.*)}')

if redis.call('EXISTS', round) == 1 or redis.call('SISMEMBER', archived, id) == 1 then
  return {'exists', ''}
end
local fields, entry = {}, {A.AT_MS, now_ms, A.OPERATOR, operator, A.ACTION, 'create'}
for i = 3, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  if ARGV[i] ~= R.DRAW_SECRET then
    entry[#entry + 1] = ARGV[i] .. A.OLD_SUFFIX
    entry[#entry + 1] = ''
    entry[#entry + 1] = ARGV[i] .. A.NEW_SUFFIX
    entry[#entry + 1] = ARGV[i + 1]
  end
end
assert(#fields > 0, 'create.lua: no fields')

local audit_id = redis.call('XADD', audit, '*', unpack(entry))
redis.call('HSET', round, unpack(fields))
redis.call('SADD', live, id)
return {'created', audit_id}
