-- change.lua: one ops change to a round and its audit entry, atomically.
--
-- KEYS[1] round hash    cg:{r}:round
-- KEYS[2] audit stream  cg:{r}:audit
-- ARGV[1] action: admission | pause | resume | open | schedule | close | set_cap | edit
-- ARGV[2] operator name (from the ops token)
-- ARGV[3] now, Unix ms
-- ARGV[4..] field, value pairs to write (ranges already checked by core):
--   admission: any of rate_per_minute, batch_interval_ms, max_active, pass_ttl_seconds
--   schedule:  opens_at_ms
--   set_cap:   cap_pence
--   edit:      any of name, identity, cap_pence, min_investment_pence,
--              max_investment_pence, share_price_pence, closes_at_ms (their
--              combination checked by core against the round's other terms)
--   pause, resume, open, close: none (the script picks the phase)
-- (crowdgate-store's change.rs builds ARGV; an unknown action is a script
-- error, since no caller sends one.)
--
-- Returns {verdict, detail}:
--   'changed', audit entry id
--   'unchanged', ''               every value given is already the stored one:
--                                 nothing written, no audit entry
--   'not_seeded', ''              the round has no data
--   'wrong_phase', phase          the action is not allowed in this phase
--   'past_closing', ''            open or resume after the closing time
--   'opens_after_closing', closes_at_ms
--   'cap_not_above_raised', raised_pence
--   'cap_leaves_no_room', lowest cap that does: raised + the smallest investment
--   'cap_not_whole_shares', share_price_pence
--   'cap_below_minimum', min_investment_pence
--
-- Which phases each action takes (the phase machine in the prelude allows
-- every move these make): pause: open; resume: paused; open, schedule:
-- scheduled; close, set_cap: any but closed (set_cap on a full round reopens
-- it); admission: any; edit: scheduled only (once a round opens, its terms
-- are what investors were shown and invested on).
--
-- A new rate_per_minute (a value other than the one stored) also records
-- rate_changed_at_ms = now and sets achieved_rate_measured_ms to 0: the
-- achieved rate (advance.lua) is measured afresh at the new rate, and wait
-- estimates say they are uncertain meanwhile. These two are bookkeeping of
-- the audited change, not changes of their own.
--
-- A value equal to the stored one is no change: it is left out of the
-- entry, and a change of nothing but such values is 'unchanged' (a rate set
-- to the rate it already has is not in the audit trail as a change).
--
-- Invariants kept: a change is never written without its audit entry, and an
-- audit entry never names a change that was not written (one script, every
-- read and check before the first write); raised <= cap (a new cap must be
-- above raised, with room for the smallest investment); phases move only
-- through move_phase.

local round, audit = KEYS[1], KEYS[2]
local action, operator, now_ms = ARGV[1], ARGV[2], tonumber(ARGV[3])

local r = redis.call('HMGET', round, R.PHASE, R.RAISED_PENCE, R.CLOSES_AT_MS, R.SHARE_PRICE_PENCE,
  R.MIN_INVESTMENT_PENCE)
local phase = r[1]
if not phase then return {'not_seeded', ''} end
local raised, closes_at = int(r[2]), int(r[3])
local price, minimum = tonumber(r[4] or '1'), int(r[5])

local ANY = {[P.SCHEDULED] = true, [P.OPEN] = true, [P.PAUSED] = true, [P.FULL] = true, [P.CLOSED] = true}
local LIVE = {[P.SCHEDULED] = true, [P.OPEN] = true, [P.PAUSED] = true, [P.FULL] = true}
local TAKES = {
  admission = ANY,
  pause = {[P.OPEN] = true},
  resume = {[P.PAUSED] = true},
  open = {[P.SCHEDULED] = true},
  schedule = {[P.SCHEDULED] = true},
  close = LIVE,
  set_cap = LIVE,
  edit = {[P.SCHEDULED] = true},
}
if not TAKES[action] then error('change.lua: unknown action ' .. tostring(action)) end
if not TAKES[action][phase] then return {'wrong_phase', phase} end

-- The new values, as field, value pairs; validated before anything is written.
local changes = {}
for i = 4, #ARGV, 2 do
  changes[#changes + 1] = {ARGV[i], ARGV[i + 1]}
end

if action == 'pause' then
  changes = {{R.PHASE, P.PAUSED}}
elseif action == 'resume' then
  if has_come(closes_at, now_ms) then return {'past_closing', ''} end
  changes = {{R.PHASE, P.OPEN}}
elseif action == 'open' then
  if has_come(closes_at, now_ms) then return {'past_closing', ''} end
  changes = {{R.PHASE, P.OPEN}, {R.OPENS_AT_MS, fmt(now_ms)}}
elseif action == 'schedule' then
  local opens_at = tonumber(changes[1][2])
  if closes_at > 0 and opens_at >= closes_at then return {'opens_after_closing', fmt(closes_at)} end
elseif action == 'close' then
  changes = {{R.PHASE, P.CLOSED}}
elseif action == 'set_cap' then
  local cap = tonumber(changes[1][2])
  if cap <= raised then return {'cap_not_above_raised', fmt(raised)} end
  if cap % price ~= 0 then return {'cap_not_whole_shares', fmt(price)} end
  if cap < minimum then return {'cap_below_minimum', fmt(minimum)} end
  -- A cap with less room above raised than the smallest investment would
  -- make a round that is open but can take nobody's money.
  if not has_room(cap, raised, minimum, price) then
    return {'cap_leaves_no_room', fmt(raised + smallest_investment(minimum, price))}
  end
  if phase == P.FULL then changes[#changes + 1] = {R.PHASE, P.OPEN} end
end
-- Values already in place are no change (a phase move always is one).
local real = {}
for _, change in ipairs(changes) do
  if change[1] == R.PHASE or redis.call('HGET', round, change[1]) ~= change[2] then
    real[#real + 1] = change
  end
end
changes = real
if #changes == 0 then return {'unchanged', ''} end
for _, change in ipairs(changes) do
  assert(change[1] ~= R.PHASE or can_move(phase, change[2]),
    'phase machine: ' .. action .. ' cannot move ' .. phase .. ' to ' .. tostring(change[2]))
end

-- Writes start here: the audit entry, then the values.
local entry = {A.AT_MS, fmt(now_ms), A.OPERATOR, operator, A.ACTION, action}
for _, change in ipairs(changes) do
  local old = redis.call('HGET', round, change[1]) or ''
  entry[#entry + 1] = change[1] .. A.OLD_SUFFIX
  entry[#entry + 1] = old
  entry[#entry + 1] = change[1] .. A.NEW_SUFFIX
  entry[#entry + 1] = change[2]
end
local id = redis.call('XADD', audit, '*', unpack(entry))
for _, change in ipairs(changes) do
  if change[1] == R.PHASE then
    move_phase(round, phase, change[2])
  else
    if change[1] == R.RATE_PER_MINUTE then
      redis.call('HSET', round, R.RATE_CHANGED_AT_MS, fmt(now_ms), R.ACHIEVED_RATE_MEASURED_MS, '0')
    end
    redis.call('HSET', round, change[1], change[2])
  end
end
return {'changed', id}
