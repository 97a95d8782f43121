"""Rate-limit state in Redis: every decision (one key or a whole ``hit_all``) is
one EVALSHA of one Lua script, timed by the Redis server's own TIME.

The script mirrors ``_algorithms`` in integer microseconds (exact in Lua's
doubles until the year 2255). Each key's state is one string that expires when
it stops mattering, so Redis needs no sweeping.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final

from buttress.errors import BackendError, BackendUnavailableError, UnsupportedBackendError
from buttress.ratelimit._store import Check
from buttress.ratelimit._values import Decision

__all__ = ["SCRIPT", "RedisStore"]

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
    """Runs the script on a ``RedisBackend``'s asyncio client."""

    kind = "redis"

    def __init__(self, backend: Any) -> None:
        from redis.exceptions import NoScriptError

        self._client = backend.client
        self._no_script = NoScriptError
        self.fixed_now_us: int | None = None
        """Testing hook: decide at this time (µs) instead of the server's TIME
        (keys are then written without expiry)."""

    def decide(self, checks: Sequence[Check], consume: bool) -> list[Decision]:
        raise UnsupportedBackendError(
            "RateLimiter on Redis is async-only; use await limiter.ahit() / apeek() / areset()"
        )

    def reset(self, keys: Sequence[str]) -> None:
        self.decide((), False)  # raises: async-only

    async def adecide(self, checks: Sequence[Check], consume: bool) -> list[Decision]:
        keys = [c[1] for c in checks]
        args: list[object] = ["1" if consume else "0", self.fixed_now_us or ""]
        for algorithm, _, limit, period, cost in checks:
            args += (_CODES[algorithm.name], limit, -(-period // 1000), cost)
        try:
            try:
                raw = await self._client.evalsha(SCRIPT_SHA, len(keys), *keys, *args)
            except self._no_script:
                # First use on this server (or after SCRIPT FLUSH): EVAL also caches it.
                raw = await self._client.eval(SCRIPT, len(keys), *keys, *args)
        except Exception as exc:
            translated = _translate(exc)
            if translated is None:
                raise
            raise translated from exc
        # The script returns integers: allowed (0/1), remaining, reset µs, retry µs.
        return [
            _new(Decision, (raw[j] == 1, check[2], raw[j + 1], raw[j + 2] / _US, raw[j + 3] / _US))
            for j, check in zip(range(0, len(raw), 4), checks, strict=True)
        ]

    async def areset(self, keys: Sequence[str]) -> None:
        try:
            await self._client.delete(*keys)
        except Exception as exc:
            translated = _translate(exc)
            if translated is None:
                raise
            raise translated from exc


def _translate(exc: Exception) -> BackendError | None:
    """The buttress error for a driver failure (None: not the driver's, re-raise)."""
    from redis.exceptions import ConnectionError, RedisError, TimeoutError

    if isinstance(exc, ConnectionError | TimeoutError | OSError):
        return BackendUnavailableError(f"redis unreachable ({type(exc).__name__})")
    if isinstance(exc, RedisError):
        return BackendError(f"redis rate-limit script failed ({type(exc).__name__}: {exc})")
    return None
