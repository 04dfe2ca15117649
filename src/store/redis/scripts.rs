//! The Lua scripts of [`RedisTokenStore`](super::RedisTokenStore), one an operation (see the
//! module's docs), loaded once per process.

use std::sync::LazyLock;

use fred::types::scripts::Script;

/// `valid(value, longest)`: whether a product ID or token read from Redis keeps the rules of
/// [`ProductId`] and [`SovReqToken`] (1 to `longest` URL-unreserved characters, not only dots).
const LUA_VALID: &str = r"
local function valid(value, longest)
  return #value <= longest and string.find(value, '^[A-Za-z0-9%._~%-]+$') ~= nil
    and string.find(value, '^%.+$') == nil
end
";

/// Stores a capture unless its token has a conversion, or (first-click) a capture live at the
/// landing's time, of a token not converted since, is there; answers 1 if it stored it.
///
/// KEYS: capture, tokens. ARGV: value, PX, the landing's time, token, '1' for first-click.
const CAPTURE: &str = r"
if redis.call('HEXISTS', KEYS[2], ARGV[4]) == 1 then
  return 0
end
if ARGV[5] == '1' then
  local held = redis.call('GET', KEYS[1])
  if held then
    local expires_at = tonumber(string.match(held, '^(%d+)/'))
    local token = string.match(held, '^%d+/[^/]+/([^/]+)$')
    local spent = token and redis.call('HEXISTS', KEYS[2], token) == 1
    if expires_at and expires_at > tonumber(ARGV[3]) and not spent then
      return 0
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// The capture, `{value, 1 if its token has a conversion else 0}`, or `{}`.
///
/// KEYS: capture, tokens.
const CAPTURED: &str = r"
local held = redis.call('GET', KEYS[1])
if not held then
  return {}
end
local token = string.match(held, '^%d+/[^/]+/([^/]+)$')
if token and redis.call('HEXISTS', KEYS[2], token) == 1 then
  return {held, 1}
end
return {held, 0}
";

/// `convert(first, product, token)`: makes an owed conversion of `product` and `token`, unless
/// the token has one. Answers `{'converted', id}` or `{'owed', product, token}`.
///
/// KEYS from `first` on: conversion, tokens, orders, due, state:owed. ARGV: id, ordered_at,
/// next_attempt_at, order or '', lease or '', lease_until.
const LUA_CONVERT: &str = r"
local function convert(first, product, token)
  local conversion, tokens, orders, due, owed =
    KEYS[first], KEYS[first + 1], KEYS[first + 2], KEYS[first + 3], KEYS[first + 4]
  local known = redis.call('HGET', tokens, token)
  if known then
    return {'converted', known}
  end
  local fields = {'token', token, 'product', product, 'ordered_at', ARGV[2], 'state', 'owed',
    'attempts', '0', 'next_attempt_at', ARGV[3]}
  if ARGV[4] ~= '' then
    table.insert(fields, 'order')
    table.insert(fields, ARGV[4])
    redis.call('HSET', orders, ARGV[4], ARGV[1])
  end
  if ARGV[5] ~= '' then
    table.insert(fields, 'lease')
    table.insert(fields, ARGV[5])
    table.insert(fields, 'lease_until')
    table.insert(fields, ARGV[6])
  end
  redis.call('HSET', conversion, unpack(fields))
  redis.call('HSET', tokens, token, ARGV[1])
  redis.call('ZADD', due, ARGV[3], ARGV[1])
  redis.call('ZADD', owed, ARGV[2], ARGV[1])
  return {'owed', product, token}
end
";

/// Takes the capture into an owed conversion; the capture stays. Answers `{'none'}`,
/// `{'corrupt'}`, `{'expired'}`, `{'converted', id}` or `{'owed', product, token}`.
///
/// KEYS: capture, conversion, tokens, orders, due, state:owed. ARGV: id, ordered_at,
/// next_attempt_at, order or '', lease or '', lease_until.
const TAKE: &str = r"
local held = redis.call('GET', KEYS[1])
if not held then
  return {'none'}
end
local expires_at, product, token = string.match(held, '^(%d+)/([^/]+)/([^/]+)$')
if not expires_at or not valid(product, 128) or not valid(token, 256) then
  return {'corrupt'}
end
if tonumber(expires_at) <= tonumber(ARGV[2]) then
  return {'expired'}
end
-- The capture stays: once its token is converted it tells the visitor's next order so, until
-- it expires.
return convert(2, product, token)
";

/// Makes a kept capture an owed conversion, unless its token has one; captures stay.
/// Answers `{'converted', id}` or `{'owed', product, token}`.
///
/// KEYS: conversion, tokens, orders, due, state:owed. ARGV: id, ordered_at, next_attempt_at,
/// order or '', lease or '', lease_until, product, token.
const OWE: &str = r"
return convert(1, ARGV[7], ARGV[8])
";

/// Voids a conversion owed, parked or dead, or voided while a delivery held it. A delivery
/// that holds it now (its lease, quarantine included, not run out) keeps its lease: the void
/// waits for its settlement (`'sending'`); a lease run out is ended. Answers `{'none'}`, or
/// `{what, fields}` (`0` for a key that is not a hash) with what as `'voided'` (now),
/// `'delivered'`, `'already'` (voided before), `'sending'` or `'corrupt'`.
///
/// KEYS: conversion, due, settled, state:owed, state:parked, state:dead, state:delivered,
/// state:voided. ARGV: id, now.
const VOID: &str = r"
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'none' then
  return {'none'}
end
if kind ~= 'hash' then
  return {'corrupt', 0}
end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'delivered' then
  return {'delivered', redis.call('HGETALL', KEYS[1])}
end
local lease = redis.call('HGET', KEYS[1], 'lease')
local leased = lease and lease ~= ''
if state == 'voided' and not leased then
  return {'already', redis.call('HGETALL', KEYS[1])}
end
if state ~= 'owed' and state ~= 'parked' and state ~= 'dead' and state ~= 'voided' then
  return {'corrupt', redis.call('HGETALL', KEYS[1])}
end
if state ~= 'voided' then
  for i = 2, 7 do
    redis.call('ZREM', KEYS[i], ARGV[1])
  end
  redis.call('ZADD', KEYS[8], tonumber(redis.call('HGET', KEYS[1], 'ordered_at')) or 0, ARGV[1])
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
  redis.call('HSET', KEYS[1], 'state', 'voided', 'settled_at', ARGV[2])
  redis.call('HDEL', KEYS[1], 'next_attempt_at')
end
local held_until = tonumber(redis.call('HGET', KEYS[1], 'lease_until'))
if leased and held_until and held_until > tonumber(ARGV[2]) then
  return {'sending', redis.call('HGETALL', KEYS[1])}
end
redis.call('HDEL', KEYS[1], 'lease', 'lease_until')
return {'voided', redis.call('HGETALL', KEYS[1])}
";

/// The IDs of the conversions due, earliest first, at most a limit: what [`CLAIM`] is then
/// given, each with its key declared.
///
/// KEYS: due. ARGV: now, limit.
const DUE: &str = r"
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
";

/// Leases those of the given conversions still due, in order. Answers `{id, fields, …}`, with
/// `0` for the fields of a conversion whose key is not a hash here: it stays in `due`, looked at
/// again once the lease would have run out (its key may be moving between cluster nodes).
///
/// KEYS: due, then each conversion's key. ARGV: now, lease, lease_until, then each ID.
const CLAIM: &str = r"
local claimed = {}
for i = 2, #KEYS do
  local id, key = ARGV[i + 2], KEYS[i]
  local due = tonumber(redis.call('ZSCORE', KEYS[1], id))
  if due and due <= tonumber(ARGV[1]) then
    claimed[#claimed + 1] = id
    if redis.call('TYPE', key).ok == 'hash' then
      redis.call('HSET', key, 'lease', ARGV[2], 'lease_until', ARGV[3])
      local next_at = redis.call('HGET', key, 'next_attempt_at')
      local until_due = ARGV[3]
      if tonumber(next_at) and tonumber(next_at) > tonumber(ARGV[3]) then
        until_due = next_at
      end
      redis.call('ZADD', KEYS[1], until_due, id)
      claimed[#claimed + 1] = redis.call('HGETALL', key)
    else
      redis.call('ZADD', KEYS[1], ARGV[3], id)
      claimed[#claimed + 1] = 0
    end
  end
end
return claimed
";

/// Marks a claimed conversion that cannot be read dead, if the lease still holds.
///
/// KEYS: conversion, due, settled, state:owed, state:parked, state:dead, state:delivered,
/// state:voided. ARGV: id, lease, now.
const BURY: &str = r"
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[2] then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[1])
for i = 4, 8 do
  redis.call('ZREM', KEYS[i], ARGV[1])
end
redis.call('ZADD', KEYS[6], tonumber(redis.call('HGET', KEYS[1], 'ordered_at')) or 0, ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'dead', 'settled_at', ARGV[3])
redis.call('HDEL', KEYS[1], 'lease', 'lease_until', 'next_attempt_at')
return 1
";

/// Extends the lease, if it is the conversion's and the conversion was not voided meanwhile; a
/// renewal that lands after a later one keeps the later end.
///
/// KEYS: conversion, due. ARGV: id, lease, lease_until.
const RENEW: &str = r"
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[2] or redis.call('HGET', KEYS[1], 'state') == 'voided' then
  return 0
end
local held_until = ARGV[3]
local before = redis.call('HGET', KEYS[1], 'lease_until')
if tonumber(before) and tonumber(before) > tonumber(held_until) then
  held_until = before
end
redis.call('HSET', KEYS[1], 'lease_until', held_until)
local next_at = redis.call('HGET', KEYS[1], 'next_attempt_at')
if next_at then
  local due = held_until
  if tonumber(next_at) and tonumber(next_at) > tonumber(held_until) then
    due = next_at
  end
  redis.call('ZADD', KEYS[2], due, ARGV[1])
end
return 1
";

/// Ends the lease with the delivery's outcome, if it is the conversion's; a 200 (`delivered`)
/// whatever the lease, unless the conversion is delivered already, or voided by a void that
/// waited for no delivery. A conversion voided while this delivery was out stays voided,
/// unless it says delivered.
///
/// KEYS: conversion, due, settled, state:owed, state:parked, state:dead, state:delivered,
/// state:voided. ARGV: id, lease, state, attempts, next_attempt_at or '', settled_at or '', '1' if there is
/// an error, the error, the end of its call or '' (added to `calls`, of which the last ten are
/// kept: each `,` and 13 digits of milliseconds).
const SETTLE: &str = r"
local state = redis.call('HGET', KEYS[1], 'state')
local lease = redis.call('HGET', KEYS[1], 'lease')
if lease ~= ARGV[2] then
  if ARGV[3] ~= 'delivered' or not state or state == 'delivered' or (state == 'voided' and not lease) then
    return 0
  end
end
if ARGV[9] ~= '' then
  local calls = (redis.call('HGET', KEYS[1], 'calls') or '') .. ',' .. ARGV[9]
  redis.call('HSET', KEYS[1], 'calls', string.sub(calls, -140))
end
if state == 'voided' and ARGV[3] ~= 'delivered' then
  redis.call('HSET', KEYS[1], 'attempts', ARGV[4])
  redis.call('HDEL', KEYS[1], 'lease', 'lease_until')
  if ARGV[7] == '1' then
    redis.call('HSET', KEYS[1], 'last_error', ARGV[8])
  end
  return 1
end
local into = ({owed = KEYS[4], parked = KEYS[5], dead = KEYS[6], delivered = KEYS[7],
  voided = KEYS[8]})[ARGV[3]]
for i = 2, 8 do
  redis.call('ZREM', KEYS[i], ARGV[1])
end
redis.call('ZADD', into, tonumber(redis.call('HGET', KEYS[1], 'ordered_at')) or 0, ARGV[1])
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'attempts', ARGV[4])
redis.call('HDEL', KEYS[1], 'lease', 'lease_until')
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'next_attempt_at', ARGV[5])
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
else
  redis.call('HDEL', KEYS[1], 'next_attempt_at')
end
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[1], 'settled_at', ARGV[6])
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1])
else
  redis.call('HDEL', KEYS[1], 'settled_at')
end
if ARGV[7] == '1' then
  redis.call('HSET', KEYS[1], 'last_error', ARGV[8])
else
  redis.call('HDEL', KEYS[1], 'last_error')
end
return 1
";

/// Makes the given conversions due now, those still parked; answers how many.
///
/// KEYS: due, then each conversion's key. ARGV: now, then each ID.
const WAKE: &str = r"
local woken = 0
for i = 2, #KEYS do
  local key, id = KEYS[i], ARGV[i]
  if redis.call('TYPE', key).ok == 'hash' and redis.call('HGET', key, 'state') == 'parked' then
    redis.call('HSET', key, 'next_attempt_at', ARGV[1])
    local due = ARGV[1]
    local held_until = redis.call('HGET', key, 'lease_until')
    if tonumber(held_until) and tonumber(held_until) > tonumber(ARGV[1]) then
      due = held_until
    end
    redis.call('ZADD', KEYS[1], due, id)
    woken = woken + 1
  end
end
return woken
";

/// Makes a dead conversion owed, due at a time; answers 1 if it was dead.
///
/// KEYS: conversion, due, settled, state:owed, state:parked, state:dead, state:delivered,
/// state:voided. ARGV: id, due at.
const REVIVE: &str = r"
if redis.call('HGET', KEYS[1], 'state') ~= 'dead' then
  return 0
end
redis.call('ZREM', KEYS[6], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], tonumber(redis.call('HGET', KEYS[1], 'ordered_at')) or 0, ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'owed', 'next_attempt_at', ARGV[2])
redis.call('HDEL', KEYS[1], 'settled_at', 'lease', 'lease_until')
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
";

/// The IDs of up to a batch of the conversions settled before a time: what [`PURGE`] is then
/// given, each with its key declared.
///
/// KEYS: settled. ARGV: settled before (exclusive), batch.
const SETTLED_BEFORE: &str = r"
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, ARGV[2])
";

/// Removes those of the given conversions still settled before a time; answers how many.
///
/// KEYS: settled, due, tokens, orders, state:owed, state:parked, state:dead, state:delivered,
/// state:voided, then each conversion's key. ARGV: settled before (exclusive), then each ID.
const PURGE: &str = r"
local purged = 0
for i = 10, #KEYS do
  local key, id = KEYS[i], ARGV[i - 8]
  local settled_at = tonumber(redis.call('ZSCORE', KEYS[1], id))
  if settled_at and settled_at < tonumber(ARGV[1]) then
    if redis.call('TYPE', key).ok == 'hash' then
      local token = redis.call('HGET', key, 'token')
      if token and redis.call('HGET', KEYS[3], token) == id then
        redis.call('HDEL', KEYS[3], token)
      end
      local order = redis.call('HGET', key, 'order')
      if order and redis.call('HGET', KEYS[4], order) == id then
        redis.call('HDEL', KEYS[4], order)
      end
    end
    redis.call('DEL', key)
    for _, index in ipairs({1, 2, 5, 6, 7, 8, 9}) do
      redis.call('ZREM', KEYS[index], id)
    end
    purged = purged + 1
  end
end
return purged
";

/// A window of a sorted set: up to a count of its members within scores, from an offset,
/// the lowest scores first (`fwd`) or the highest (`rev`). Answers `{id, score, in, …}`, the
/// score as an integer, `in` 1 if the member is in the second set (or there is none), else 0.
///
/// KEYS: the set, then (optional) a state's set. ARGV: 'fwd' or 'rev', the lowest score, the
/// highest score (as `ZRANGEBYSCORE` takes them), offset, count.
const WINDOW: &str = r"
local found
if ARGV[1] == 'rev' then
  found = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[3], ARGV[2], 'WITHSCORES', 'LIMIT', ARGV[4], ARGV[5])
else
  found = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[3], 'WITHSCORES', 'LIMIT', ARGV[4], ARGV[5])
end
local window = {}
for i = 1, #found, 2 do
  local kept = 1
  if KEYS[2] and not redis.call('ZSCORE', KEYS[2], found[i]) then
    kept = 0
  end
  window[#window + 1] = found[i]
  window[#window + 1] = tonumber(found[i + 1])
  window[#window + 1] = kept
end
return window
";

/// How many members of each set have a score in each range: for each set in turn, one count
/// per range.
///
/// KEYS: state:owed, state:parked, state:dead, state:delivered, state:voided. ARGV: each
/// range's start (included) and end (excluded).
const DAYS: &str = r"
local counts = {}
for i = 1, #KEYS do
  for r = 1, #ARGV, 2 do
    counts[#counts + 1] = redis.call('ZCOUNT', KEYS[i], ARGV[r], '(' .. ARGV[r + 1])
  end
end
return counts
";

/// The `last_error` of each given conversion still in a state and with one.
///
/// KEYS: each conversion's key. ARGV: the state.
const ERRORS: &str = r"
local errors = {}
for i = 1, #KEYS do
  if redis.call('TYPE', KEYS[i]).ok == 'hash' then
    local held = redis.call('HMGET', KEYS[i], 'state', 'last_error')
    if held[1] == ARGV[1] and held[2] then
      errors[#errors + 1] = held[2]
    end
  end
end
return errors
";

/// The given conversions. Answers `{id, fields, …}`, with `0` for the fields of a key that is
/// missing or not a hash.
///
/// KEYS: each conversion's key. ARGV: each ID.
const RECORDS: &str = r"
local read = {}
for i = 1, #KEYS do
  read[#read + 1] = ARGV[i]
  if redis.call('TYPE', KEYS[i]).ok == 'hash' then
    read[#read + 1] = redis.call('HGETALL', KEYS[i])
  else
    read[#read + 1] = 0
  end
end
return read
";

/// How many conversions are in each state.
///
/// KEYS: state:owed, state:parked, state:dead, state:delivered, state:voided.
const COUNTS: &str = r"
local counts = {}
for i = 1, #KEYS do
  counts[i] = redis.call('ZCARD', KEYS[i])
end
return counts
";

/// The ID an index holds for a key, or nothing: an order's conversion (`orders`) or a
/// token's (`tokens`).
///
/// KEYS: orders or tokens. ARGV: the order or the token.
const INDEXED: &str = r"
return redis.call('HGET', KEYS[1], ARGV[1])
";

pub(super) static CAPTURE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(CAPTURE));
pub(super) static CAPTURED_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(CAPTURED));
pub(super) static TAKE_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::from_lua(format!("{LUA_VALID}{LUA_CONVERT}{TAKE}")));
pub(super) static OWE_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::from_lua(format!("{LUA_CONVERT}{OWE}")));
pub(super) static VOID_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(VOID));
pub(super) static DUE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(DUE));
pub(super) static CLAIM_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(CLAIM));
pub(super) static BURY_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(BURY));
pub(super) static RENEW_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(RENEW));
pub(super) static SETTLE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(SETTLE));
pub(super) static WAKE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(WAKE));
/// The server's clock, `{seconds, microseconds}`, read on the node that holds the keys.
///
/// KEYS: due.
const TIME: &str = r"
return redis.call('TIME')
";

pub(super) static TIME_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(TIME));
pub(super) static REVIVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(REVIVE));
pub(super) static SETTLED_BEFORE_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::from_lua(SETTLED_BEFORE));
pub(super) static PURGE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(PURGE));
pub(super) static WINDOW_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(WINDOW));
pub(super) static DAYS_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(DAYS));
pub(super) static ERRORS_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(ERRORS));
pub(super) static RECORDS_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(RECORDS));
pub(super) static COUNTS_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(COUNTS));
pub(super) static INDEXED_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(INDEXED));
