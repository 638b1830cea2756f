-- change.lua: one ops change to a round and its audit entry, atomically.
--
-- KEYS[1] round hash    cg:{r}:round
-- KEYS[2] audit stream  cg:{r}:audit
-- ARGV[1] action: admission | pause | resume | open | schedule | close | set_cap
-- ARGV[2] operator name (from the ops token)
-- ARGV[3] now, Unix milliseconds
-- ARGV[4..] field, value pairs to write (ranges already checked by core):
--   admission: any of rate_per_minute, batch_interval_ms, max_active, pass_ttl_seconds
--   schedule:  opens_at_ms
--   set_cap:   cap_pence
--   pause, resume, open, close: none (the script picks the phase)
--
-- Returns {status, code, field, message, audit_id}:
--   200 'changed'                the audit entry's stream id in audit_id
--   404 'round_not_seeded'
--   409 'invalid_transition'     field 'phase'; the message says why and what to do
--   422 'invalid_field'          field 'cap_pence' (not above raised, not whole
--                                shares, below the minimum investment) or
--                                'opens_at' (not before the closing time)
--
-- Phases: open -> paused (pause); paused -> open (resume); scheduled -> open
-- (open now); scheduled -> scheduled with a new opens_at_ms (open at a time);
-- scheduled | open | paused | full -> closed (close); full -> open when the cap
-- is raised above raised_pence. A closed round stays closed.
--
-- Invariants kept: a change is never written without its audit entry, and an
-- audit entry never names a change that was not written (one script, every
-- read and check before the first write); raised <= cap (a new cap must be
-- above raised_pence); phases move only along the transitions above.

local round, audit = KEYS[1], KEYS[2]
local action, operator, now_ms = ARGV[1], ARGV[2], tonumber(ARGV[3])

local r = redis.call('HMGET', round, 'phase', 'raised_pence', 'closes_at_ms', 'share_price_pence',
  'min_investment_pence')
local phase = r[1]
if not phase then
  return {404, 'round_not_seeded', '', 'the round has no data in Redis yet', ''}
end
local raised, closes_at = tonumber(r[2] or '0'), tonumber(r[3] or '0')
local price, minimum = tonumber(r[4] or '1'), tonumber(r[5] or '0')

local why = {
  scheduled = 'it has not opened yet (open it now, or at a new time)',
  open = 'it is already open',
  paused = 'it is paused (resume it)',
  full = 'it is full (raise the cap to reopen it)',
  closed = 'it is closed, and a closed round stays closed',
}
local function refuse(verb)
  return {409, 'invalid_transition', 'phase',
    'cannot ' .. verb .. ' the round: ' .. (why[phase] or ('its phase is ' .. phase)), ''}
end
local function past_closing()
  return closes_at > 0 and now_ms >= closes_at
end

-- The new values, as field, value pairs; validated before anything is written.
local changes = {}
for i = 4, #ARGV, 2 do
  changes[#changes + 1] = {ARGV[i], ARGV[i + 1]}
end

if action == 'admission' then
  -- Admission settings may change in any phase.
elseif action == 'pause' then
  if phase ~= 'open' then return refuse('pause') end
  changes = {{'phase', 'paused'}}
elseif action == 'resume' then
  if phase ~= 'paused' then return refuse('resume') end
  if past_closing() then
    return {409, 'invalid_transition', 'phase', 'cannot resume the round: its closing time has passed', ''}
  end
  changes = {{'phase', 'open'}}
elseif action == 'open' then
  if phase ~= 'scheduled' then return refuse('open') end
  if past_closing() then
    return {409, 'invalid_transition', 'phase', 'cannot open the round: its closing time has passed', ''}
  end
  changes = {{'phase', 'open'}, {'opens_at_ms', string.format('%d', now_ms)}}
elseif action == 'schedule' then
  if phase ~= 'scheduled' then return refuse('reschedule') end
  local opens_at = tonumber(changes[1][2])
  if closes_at > 0 and opens_at >= closes_at then
    return {422, 'invalid_field', 'opens_at', 'must be before the closing time (closes_at_ms ' ..
      string.format('%d', closes_at) .. ')', ''}
  end
elseif action == 'close' then
  if phase == 'closed' then return refuse('close') end
  changes = {{'phase', 'closed'}}
elseif action == 'set_cap' then
  if phase == 'closed' then return refuse('change the cap of') end
  local cap = tonumber(changes[1][2])
  if cap <= raised then
    return {422, 'invalid_field', 'cap_pence', 'must be above the amount already raised (' ..
      string.format('%d', raised) .. ' pence)', ''}
  end
  if cap % price ~= 0 then
    return {422, 'invalid_field', 'cap_pence', 'must be a whole number of shares (a multiple of ' ..
      string.format('%d', price) .. ' pence)', ''}
  end
  if cap < minimum then
    return {422, 'invalid_field', 'cap_pence', 'must be at least the minimum investment (' ..
      string.format('%d', minimum) .. ' pence)', ''}
  end
  if phase == 'full' then changes[#changes + 1] = {'phase', 'open'} end
else
  return {422, 'invalid_field', 'action', 'unknown action ' .. action, ''}
end

-- Writes start here: the audit entry, then the values.
local entry = {'at_ms', string.format('%d', now_ms), 'operator', operator, 'action', action}
for _, change in ipairs(changes) do
  local old = redis.call('HGET', round, change[1]) or ''
  entry[#entry + 1] = change[1] .. '.old'
  entry[#entry + 1] = old
  entry[#entry + 1] = change[1] .. '.new'
  entry[#entry + 1] = change[2]
end
local id = redis.call('XADD', audit, '*', unpack(entry))
for _, change in ipairs(changes) do
  redis.call('HSET', round, change[1], change[2])
end
return {200, 'changed', '', 'changed', id}
