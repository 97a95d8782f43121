"""A shared circuit in Redis: two keys, moved by one Lua script call per step.

The script runs the shared state machine atomically and on the server's
clock: load the circuit, apply one operation (``read``, ``admit``, ``success``,
``failure``, ``ignored``, ``reset``, ``force_open``), save, and answer with
the resulting state and decision. It mirrors ``_state.py`` (consecutive-failure
trigger, epochs, expiring half-open probe permits) and must change with it, as
must its PostgreSQL twin, the PL/pgSQL function ``buttress_breaker_step``
created by the packaged migration
``migrations/builtin/postgresql/0007_breaker_state.sql`` (changed only by a
later migration, never by editing that file). redis-py is imported only when
a step runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from buttress._exceptions import ValidationError
from buttress._keys import HASHED, digest_key, hash_tag
from buttress.breaker._store import Op, Snapshot, StepParams
from buttress.breaker._values import BreakerState

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from buttress.backends import RedisBackend

__all__ = ["REDIS_SCRIPT", "RedisBreakerStore"]

# KEYS[1]: the circuit's hash; KEYS[2]: its live probes (member = probe id,
# score = expiry). ARGV: op, epoch, probe, threshold, recovery_timeout,
# half_open_max_calls, probe_timeout, ttl seconds. Floats go back as strings
# because Redis truncates Lua numbers to integers in replies.
REDIS_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local op = ARGV[1]
local arg_epoch = tonumber(ARGV[2])
local probe = ARGV[3]
local threshold = tonumber(ARGV[4])
local recovery = tonumber(ARGV[5])
local max_probes = tonumber(ARGV[6])
local probe_timeout = tonumber(ARGV[7])
local ttl = tonumber(ARGV[8])

local h = redis.call('HMGET', KEYS[1], 'state', 'failures', 'opened_at', 'epoch', 'forced',
                     'next_probe')
local state = h[1] or 'closed'
local failures = tonumber(h[2]) or 0
local opened_at = tonumber(h[3]) or 0
local epoch = tonumber(h[4]) or 0
local forced = h[5] == '1'
local next_probe = tonumber(h[6]) or 0
local dirty = false
local decision = ''
local granted = ''
local retry_after = 0

local function move(new, force)
  epoch = epoch + 1
  redis.call('DEL', KEYS[2])
  if new == 'open' then
    opened_at = now
    forced = force
  elseif new == 'closed' then
    failures = 0
    forced = false
  end
  state = new
  dirty = true
end

if op == 'admit' then
  if state == 'open' then
    if forced then
      decision = 'rejected'
      retry_after = recovery
    elseif now < opened_at + recovery then
      decision = 'rejected'
      retry_after = opened_at + recovery - now
    else
      move('half_open', false)
    end
  end
  if state == 'closed' then
    decision = 'allowed'
  elseif state == 'half_open' then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
    if redis.call('ZCARD', KEYS[2]) < max_probes then
      next_probe = next_probe + 1
      dirty = true
      granted = tostring(next_probe)
      redis.call('ZADD', KEYS[2], string.format('%.6f', now + probe_timeout), granted)
      decision = 'probe'
    else
      decision = 'rejected'
      local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
      retry_after = math.max(0, math.min(tonumber(first[2]) - now, recovery))
    end
  end
elseif op == 'success' or op == 'failure' or op == 'ignored' then
  if arg_epoch == epoch then
    if probe ~= '' then
      if redis.call('ZREM', KEYS[2], probe) == 1 then
        if op == 'success' then
          move('closed', false)
        elseif op == 'failure' then
          move('open', false)
        end
      end
    elseif state == 'closed' and op ~= 'ignored' then
      if op == 'failure' then
        failures = failures + 1
        dirty = true
        if failures >= threshold then
          move('open', false)
        end
      elseif failures ~= 0 then
        failures = 0
        dirty = true
      end
    end
  end
elseif op == 'reset' then
  move('closed', false)
elseif op == 'force_open' then
  move('open', true)
end

if dirty then
  redis.call('HSET', KEYS[1], 'state', state, 'failures', failures,
             'opened_at', string.format('%.6f', opened_at), 'epoch', epoch,
             'forced', forced and '1' or '0', 'next_probe', next_probe)
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)

local seen = state
local open_remaining = 0
if state == 'open' and not forced then
  open_remaining = opened_at + recovery - now
  if open_remaining <= 0 then
    seen = 'half_open'
    open_remaining = 0
  end
end
local opened_ago = 0
if state ~= 'closed' then
  opened_ago = now - opened_at
end
return {seen, tostring(epoch), tostring(failures), string.format('%.6f', open_remaining),
        forced and '1' or '0', decision, granted, string.format('%.6f', retry_after),
        string.format('%.6f', opened_ago)}
"""


def _state(value: str) -> BreakerState:
    return BreakerState(value)


def _tag_of(key: str) -> bytes | None:
    """``key``'s Redis Cluster hash tag; None when it has none, or cannot be encoded."""
    try:
        return hash_tag(key.encode("utf-8"))
    except UnicodeEncodeError:
        return None


class RedisBreakerStore:
    """A shared circuit in two Redis keys, moved by one Lua script call per step."""

    _SHA = hashlib.sha1(REDIS_SCRIPT.encode()).hexdigest()

    def __init__(self, client: Redis, *, prefix: str = "buttress:breaker:", ttl: int = 86_400):
        if not isinstance(prefix, str) or _tag_of(f"{prefix}{{{HASHED}}}") is None:
            raise ValidationError(
                "prefix",
                "must be a string that leaves the breaker's hash tag working: no empty "
                "'{}' before any other '}' (Redis Cluster would hash each key whole)",
            )
        self._client = client
        self._prefix = prefix
        self._ttl = ttl

    def keys(self, name: str) -> tuple[str, str]:
        """The circuit's two keys: ``<prefix>{<name>}`` and ``<prefix>{<name>}:probes``.

        The braces are a Redis Cluster hash tag, so both keys live in one slot and
        the script runs on one master. A name that would leave no usable tag (one
        that starts with ``}``: ``{}`` is an empty tag), cannot be encoded as UTF-8,
        or starts with ``~h:`` stands inside the braces as ``~h:`` and its digest,
        as rate-limit keys do; every other name keeps its keys.
        """
        base = f"{self._prefix}{{{name}}}"
        if name.startswith(HASHED) or _tag_of(base) is None:
            base = f"{self._prefix}{{{digest_key(name)}}}"
        return base, f"{base}:probes"

    @classmethod
    def on(cls, backend: RedisBackend) -> RedisBreakerStore:
        """The store over a ``RedisBackend``'s client (what ``STORES`` builds)."""
        return cls(backend.client)

    def __repr__(self) -> str:
        return f"RedisBreakerStore(prefix={self._prefix!r})"

    async def step(self, name: str, op: Op, epoch: int, probe: str, params: StepParams) -> Snapshot:
        from redis.exceptions import NoScriptError

        keys = self.keys(name)
        ttl = max(self._ttl, int(params.recovery_timeout * 2) + 1)
        args = (
            op,
            epoch,
            probe,
            params.failure_threshold,
            repr(params.recovery_timeout),
            params.half_open_max_calls,
            repr(params.probe_timeout),
            ttl,
        )
        try:
            raw = await self._client.evalsha(self._SHA, len(keys), *keys, *args)
        except NoScriptError:
            raw = await self._client.eval(REDIS_SCRIPT, len(keys), *keys, *args)
        return _redis_snapshot(raw)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _redis_snapshot(raw: Sequence[object]) -> Snapshot:
    fields = [_text(item) for item in raw]
    return Snapshot(
        state=_state(fields[0]),
        epoch=int(fields[1]),
        failures=int(fields[2]),
        open_remaining=float(fields[3]),
        forced=fields[4] == "1",
        decision=fields[5],
        granted=fields[6],
        retry_after=float(fields[7]),
        opened_ago=float(fields[8]),
    )
