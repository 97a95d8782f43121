"""Rate-limit state in Redis: every decision (one key or a whole ``hit_all``) is
one EVALSHA of one Lua script, timed by the Redis server's own TIME.

The script mirrors ``_algorithms`` in integer microseconds (exact in Lua's
doubles until the year 2255). Each key's state is one string that expires when
it stops mattering, so Redis needs no sweeping.

On a Redis Cluster each key's state is its own string, so it lives in the slot
its name hashes to and different keys spread over every master. The script
touches only the keys it is given, so one call runs on one node: a ``hit_all``
whose keys hash to different slots is refused before anything is sent
(``CrossSlotHitAllError``); keys that share a hash tag (``"{user:42}"``) share
a slot and stay all-or-nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from buttress._exceptions import BackendError, BackendUnavailableError, UnsupportedBackendError
from buttress.backends import CrossSlotError, ProtocolError, ReplyError
from buttress.ratelimit._store import Check, Now
from buttress.ratelimit._values import Decision

if TYPE_CHECKING:
    from buttress.backends.redis import AsyncCaller, SyncCaller

__all__ = ["SCRIPT", "CrossSlotHitAllError", "RedisStore"]


class CrossSlotHitAllError(CrossSlotError):
    """``hit_all`` on a Redis Cluster over keys in different hash slots: refused
    before anything is consumed, since no one node could decide them atomically."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        UnsupportedBackendError.__init__(
            self,
            f"hit_all on a Redis Cluster needs every key in one hash slot, and these fall "
            f"in {slots}; nothing was consumed. Give the keys a common hash tag (the same "
            "'{...}' part, e.g. '{user:42}') so one node decides them all-or-nothing",
        )


_CODES: Final = {"gcra": "g", "fixed_window": "f", "sliding_window": "s"}

SCRIPT: Final = r"""
local now = tonumber(ARGV[2])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local consume = ARGV[1] == '1'

local function fmt(n) return string.format('%.0f', n) end

-- One check: returns ok, remaining, reset, retry, new state, state expiry (us).
local function decide(raw, algo, limit, period, cost)
  if algo == 'g' then
    local interval = math.floor((period + limit - 1) / limit)
    local tolerance = interval * limit
    local tat = tonumber(raw) or now
    if tat < now then tat = now end
    local ahead = tat + cost * interval - now
    if ahead <= tolerance then
      local new_tat = now + ahead
      return true, math.floor((tolerance - ahead) / interval), ahead, 0, fmt(new_tat), new_tat
    end
    return false, math.max(0, math.floor((tolerance - (tat - now)) / interval)),
      tat - now, ahead - tolerance, raw, 0
  elseif algo == 'f' then
    local start = now - (now % period)
    local used = 0
    local s, u = string.match(raw, '^(%d+) (%d+)$')
    if s and tonumber(s) >= start then start, used = tonumber(s), tonumber(u) end
    local left = start + period - now
    if used + cost <= limit then
      used = used + cost
      local reset = 0
      if used > 0 then reset = left end
      return true, limit - used, reset, 0, fmt(start) .. ' ' .. fmt(used), start + period
    end
    return false, limit - used, left, left, raw, 0
  end
  local live = {}
  for e in string.gmatch(raw, '%d+') do
    local v = tonumber(e)
    if v > now - period then live[#live + 1] = v end
  end
  local n = #live
  if n + cost > limit then
    return false, limit - n, live[n] + period - now, live[n + cost - limit] + period - now, raw, 0
  end
  if cost == 0 then
    local reset = 0
    if n > 0 then reset = live[n] + period - now end
    return true, limit - n, reset, 0, raw, 0
  end
  local stamp = now
  if n > 0 and live[n] > now then stamp = live[n] end
  for _ = 1, cost do live[#live + 1] = stamp end
  local parts = {}
  for j = 1, #live do parts[j] = fmt(live[j]) end
  return true, limit - n - cost, stamp + period - now, 0, table.concat(parts, ' '), stamp + period
end

local function store(key, state, expires)
  local ttl = math.ceil((expires - now) / 1000)
  if ARGV[2] ~= '' then
    -- Testing hook (a caller-given time): server-time TTLs would not match it.
    redis.call('SET', key, state)
  elseif ttl > 0 and state ~= '' then
    redis.call('SET', key, state, 'PX', ttl)
  else
    redis.call('DEL', key)
  end
end

if #KEYS == 1 then
  local ok, remaining, reset, retry, state, expires = decide(
    redis.call('GET', KEYS[1]) or '', ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]),
    tonumber(ARGV[6]))
  if ok and consume then store(KEYS[1], state, expires) end
  return {ok and 1 or 0, remaining, reset, retry}
end

-- Several checks: decide all (a repeated key sees its earlier check's state),
-- then write only if every one passed.
local out, pending, expiry, order, all_ok = {}, {}, {}, {}, true
for i = 1, #KEYS do
  local key = KEYS[i]
  local a = 3 + (i - 1) * 4
  local raw = pending[key]
  if raw == nil then raw = redis.call('GET', key) or '' end
  local ok, remaining, reset, retry, state, expires = decide(
    raw, ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]))
  if ok then
    if pending[key] == nil then order[#order + 1] = key end
    pending[key] = state
    expiry[key] = expires
  else
    all_ok = false
  end
  out[#out + 1] = ok and 1 or 0
  out[#out + 1] = remaining
  out[#out + 1] = reset
  out[#out + 1] = retry
end
if consume and all_ok then
  for _, key in ipairs(order) do store(key, pending[key], expiry[key]) end
end
return out
"""

SCRIPT_SHA: Final = hashlib.sha1(SCRIPT.encode()).hexdigest()

_new = tuple.__new__
_US: Final = 1e6


class RedisStore:
    """Runs the script over the backend's pipelined connection (async) or its
    pool of blocking sockets (sync); redis-py's client when those are not
    available (TLS and other redis-py-only connection options)."""

    kind = "redis"

    def __init__(self, backend: Any) -> None:
        self._client = backend.client
        self._fast: AsyncCaller | None = backend.pipelined()
        self._blocking: SyncCaller | None = backend.blocking()
        self.fixed_now_us: int | None = None
        """Testing hook: decide at this time (µs) instead of the server's TIME
        (keys are then written without expiry)."""

    def _args(self, checks: Sequence[Check], consume: bool) -> list[bytes | str | int]:
        if len(checks) == 1:  # one hit: the common case, written out
            algorithm, key, limit, period, cost = checks[0]
            flag = b"1" if consume else b"0"
            code = _CODES[algorithm.name]
            return [1, key, flag, self.fixed_now_us or b"", code, limit, -(-period // 1000), cost]
        args: list[bytes | str | int] = [len(checks)]
        args += [c[1] for c in checks]
        args += (b"1" if consume else b"0", self.fixed_now_us or b"")
        for algorithm, _, limit, period, cost in checks:
            args += (_CODES[algorithm.name], limit, -(-period // 1000), cost)
        return args

    def decide(self, checks: Sequence[Check], consume: bool, now: Now) -> list[Decision]:
        client = self._sync_client()
        args = self._args(checks, consume)

        def decode(raw: Any) -> list[Decision]:
            return _decisions(raw, checks)

        with _TRANSLATING:
            try:
                return client.call(b"EVALSHA", SCRIPT_SHA, *args, decode=decode)
            except ReplyError as exc:
                if exc.code != "NOSCRIPT":
                    raise
                # First use on this server (or after SCRIPT FLUSH): EVAL also caches it.
                return client.call(b"EVAL", SCRIPT, *args, decode=decode)

    def reset(self, keys: Sequence[str]) -> None:
        client = self._sync_client()
        with _TRANSLATING:
            client.call(b"DEL", *keys)

    def _sync_client(self) -> SyncCaller:
        if self._blocking is None:
            raise UnsupportedBackendError(
                "this Redis connection (RESP3 or another redis-py-only option) is "
                "async-only for RateLimiter; use await limiter.ahit() / apeek() / areset()"
            )
        return self._blocking

    async def adecide(self, checks: Sequence[Check], consume: bool, now: Now) -> list[Decision]:
        args = self._args(checks, consume)
        fast = self._fast

        def decode(raw: Any) -> list[Decision]:
            return _decisions(raw, checks)

        with _TRANSLATING:
            if fast is None:
                return decode(await self._driver_eval(args))
            try:
                return await fast.call(b"EVALSHA", SCRIPT_SHA, *args, decode=decode)
            except ReplyError as exc:
                if exc.code != "NOSCRIPT":
                    raise
                return await fast.call(b"EVAL", SCRIPT, *args, decode=decode)

    async def _driver_eval(self, args: list[bytes | str | int]) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return await self._client.evalsha(SCRIPT_SHA, *args)
        except NoScriptError:
            return await self._client.eval(SCRIPT, *args)

    async def areset(self, keys: Sequence[str]) -> None:
        with _TRANSLATING:
            if self._fast is not None:
                await self._fast.call(b"DEL", *keys)
            else:
                await self._client.delete(*keys)


def _decisions(raw: Any, checks: Sequence[Check]) -> list[Decision]:
    # The script returns integers: allowed (0/1), remaining, reset µs, retry µs.
    # Anything else is not this script's reply (another server, a stream out of
    # step): a protocol error, so the outage policy applies and the connection goes.
    if type(raw) is list and len(raw) == 4 and len(checks) == 1:  # one hit, written out
        ok, remaining, reset, retry = raw
        if type(ok) is int and type(remaining) is int and type(reset) is int and type(retry) is int:
            limit = checks[0][2]
            return [_new(Decision, (ok == 1, limit, remaining, reset / _US, retry / _US))]
    if type(raw) is not list or len(raw) != 4 * len(checks) or not _all_ints(raw):
        raise ProtocolError("redis rate-limit script: reply of the wrong shape")
    return [
        _new(Decision, (raw[j] == 1, check[2], raw[j + 1], raw[j + 2] / _US, raw[j + 3] / _US))
        for j, check in zip(range(0, len(raw), 4), checks, strict=True)
    ]


def _all_ints(values: list[Any]) -> bool:
    for value in values:  # noqa: SIM110  (twice as fast as all() over a generator, per decision)
        if type(value) is not int:
            return False
    return True


class _Translating:
    """``with _TRANSLATING:`` turns driver and socket failures into buttress errors."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, Exception):
            translated = _translate(exc)
            if translated is not None:
                raise translated from exc


_TRANSLATING: Final = _Translating()


def _translate(exc: Exception) -> BackendError | None:
    """The buttress error for a driver failure (None: not the driver's, re-raise)."""
    from redis.exceptions import ConnectionError, RedisError, TimeoutError

    if isinstance(exc, CrossSlotError) and not isinstance(exc, CrossSlotHitAllError):
        return CrossSlotHitAllError(exc.slots)
    if isinstance(exc, BackendError):
        return None  # already buttress's (the RESP client's ProtocolError)
    if isinstance(exc, ConnectionError | TimeoutError | OSError):
        # Builtin ConnectionError and TimeoutError are OSErrors too.
        return BackendUnavailableError(f"redis unreachable ({type(exc).__name__})")
    if isinstance(exc, RedisError | ReplyError):
        return BackendError(f"redis rate-limit script failed ({type(exc).__name__}: {exc})")
    return None
