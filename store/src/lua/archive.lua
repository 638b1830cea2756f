-- archive.lua: archives a closed round, with its audit entry.
--
-- KEYS[1] round hash          cg:{r}:round
-- KEYS[2] audit stream        cg:{r}:audit
-- KEYS[3] live rounds         cg:rounds
-- KEYS[4] archived rounds     cg:rounds:archived
-- ARGV[1] operator name   ARGV[2] now, Unix ms
--
-- Returns {verdict, detail}:
--   'archived', audit entry id
--   'already', ''          archived before: nothing written
--   'wrong_phase', phase   only a closed round is archived (its closing
--                          time past counts as closed)
--   'not_seeded', ''       no such round
--
-- Invariants kept: only a closed round leaves the live set, so no round
-- still taking joins or money stops being driven; its data stays (records,
-- journal, books: reconcile still checks it).

local round, audit, live, archived = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local operator, now_ms = ARGV[1], tonumber(ARGV[2])
local id = string.match(round, '{(.*)}')

local r = redis.call('HMGET', round, R.PHASE, R.OPENS_AT_MS, R.CLOSES_AT_MS)
if not r[1] then return {'not_seeded', ''} end
if redis.call('SISMEMBER', archived, id) == 1 then return {'already', ''} end
local phase = tick(round, r[1], int(r[2]), int(r[3]), now_ms)
if phase ~= P.CLOSED then return {'wrong_phase', phase} end

local audit_id = redis.call('XADD', audit, '*', A.AT_MS, fmt(now_ms), A.OPERATOR, operator,
  A.ACTION, 'archive')
redis.call('SREM', live, id)
redis.call('SADD', archived, id)
return {'archived', audit_id}
