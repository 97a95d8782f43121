"""The rate limiter's values: ``Rate`` (what is allowed), ``Lease`` (how a hot key
is shared by a fleet), ``Decision`` (what happened) and ``RateLimitExceeded`` (a
refusal as an exception).

Nothing here knows about algorithms or storage; ``Decision.headers`` renders a
decision as the HTTP fields clients understand.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple, TypeAlias

import attrs

from buttress._checks import check_count
from buttress._exceptions import ButtressError, ValidationError
from buttress._topic import Topic

__all__ = [
    "RATELIMIT_DECIDED",
    "Decision",
    "Lease",
    "Rate",
    "RateLimitDecided",
    "RateLimitExceeded",
]

NS_PER_SECOND = 1_000_000_000


def _units(field: str) -> Callable[[object, object, int], None]:
    """An attrs validator: a whole number of units, at least one."""

    def check(_inst: object, _attr: object, value: int) -> None:
        check_count(field, value, at_least=1)

    return check


def _period(field: str, *, optional: bool = False) -> Callable[[object, object, float], None]:
    """An attrs validator: a finite number of seconds, at least a nanosecond (the
    unit the algorithms count in); or None when ``optional``."""
    kind = "must be a number of seconds" + (" or None" if optional else "")

    def check(_inst: object, _attr: object, value: float | None) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(field, kind)
        if not math.isfinite(value) or value <= 0:
            raise ValidationError(field, "must be finite and > 0")
        if round(value * NS_PER_SECOND) < 1:
            raise ValidationError(field, "must be at least one nanosecond")

    return check


@attrs.frozen(slots=True)
class Rate:
    """At most ``limit`` units per ``per_seconds`` seconds.

    >>> Rate(100, 60).per_ns
    60000000000
    """

    limit: int = attrs.field(validator=_units("limit"))
    per_seconds: float = attrs.field(validator=_period("per_seconds"))

    @property
    def per_ns(self) -> int:
        """The period in whole nanoseconds, the unit the algorithms count in."""
        return round(self.per_seconds * NS_PER_SECOND)

    def __str__(self) -> str:
        return f"{self.limit}/{self.per_seconds:g}s"


@attrs.frozen(slots=True)
class Lease:
    """Take ``units`` at a time from a shared store and spend them in process for at
    most ``seconds`` (default: a fixed window's length, else the time the rate takes
    to grant ``units``).

    Units are deducted from the shared budget when leased, so a fleet never admits
    more than the limit; units an instance holds unspent when its lease ends are
    lost (the bounded under-use of docs/ratelimit.md, "Leased quotas").

    >>> Lease(100, 0.5)
    Lease(units=100, seconds=0.5)
    """

    units: int = attrs.field(validator=_units("lease.units"))
    seconds: float | None = attrs.field(
        default=None, validator=_period("lease.seconds", optional=True)
    )


def _whole_seconds(seconds: float) -> int:
    # Round to the millisecond first: GCRA's whole-nanosecond intervals, rounded up
    # to microseconds, can end a hair past the second (1.000001 s), which must not
    # read as 2 in a field that only has whole seconds.
    if type(seconds) is float and 0.0 <= seconds < 1e9:
        # The same answer without round()'s decimal conversion (the costly part):
        # a fraction above a millisecond cannot round down to the whole second
        # below. (``seconds - (whole - 1)`` is exact here: Sterbenz's lemma.)
        whole = math.ceil(seconds)
        if seconds == whole or seconds - (whole - 1) > 0.001:
            return whole
    return math.ceil(round(seconds, 3))


_Field: TypeAlias = tuple[bytes, bytes]

# The parts of the header fields that depend only on (policy, limit, window),
# encoded once: a process has a handful of limiters, so this stays tiny (and is
# emptied should it ever reach _FIXED_CAP, e.g. limits made per request).
_FIXED: dict[tuple[str, int, float | None], tuple[_Field, _Field, bytes]] = {}
_FIXED_CAP = 256


def _fixed_fields(policy: str, limit: int, window: float | None) -> tuple[_Field, _Field, bytes]:
    """The ``RateLimit-Policy`` and ``X-RateLimit-Limit`` fields and the start of
    ``RateLimit``'s value (up to ``r=``), as ``Decision.headers`` writes them."""
    quota = f'"{policy}";q={limit}'
    if window is not None:
        quota += f";w={math.ceil(window)}"
    return (
        (b"ratelimit-policy", quota.encode()),
        (b"x-ratelimit-limit", str(limit).encode()),
        f'"{policy}";r='.encode(),
    )


# A NamedTuple rather than an attrs class on purpose: building a frozen attrs
# instance costs more than the whole in-memory decision budget (about 1 us),
# while a tuple subclass is immutable, slotted and built in one C call.
class Decision(NamedTuple):
    """The outcome of one rate-limit check.

    ``remaining`` counts the unit hits that would pass right now, after this one;
    ``reset_after`` is the seconds until the key is fully replenished;
    ``retry_after`` is the seconds until this same request could pass (0 when
    allowed).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float

    def headers(self, *, window: float | None = None, policy: str = "default") -> dict[str, str]:
        """HTTP response fields: ``Retry-After`` (when refused), the IETF
        ``RateLimit-Policy``/``RateLimit`` fields and ``X-RateLimit-*``.

        ``window`` (the rate's ``per_seconds``) adds ``w=`` to the policy;
        ``X-RateLimit-Reset`` is in seconds from now, like ``RateLimit``'s ``t``.
        """
        reset = _whole_seconds(self.reset_after)
        quota = f'"{policy}";q={self.limit}'
        if window is not None:
            quota += f";w={math.ceil(window)}"
        fields = {
            "RateLimit-Policy": quota,
            "RateLimit": f'"{policy}";r={self.remaining};t={reset}',
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(reset),
        }
        if not self.allowed:
            fields["Retry-After"] = str(self.retry_after_seconds)
        return fields

    @property
    def retry_after_seconds(self) -> int:
        """``Retry-After`` as sent: whole seconds, rounded up, and at least 1 (a
        client told 0 would retry at once and be refused again)."""
        return max(1, _whole_seconds(self.retry_after))

    def raw_headers(
        self, *, window: float | None = None, policy: str = "default"
    ) -> list[tuple[bytes, bytes]]:
        """``headers()`` as ASGI wants them: ``(name, value)`` byte pairs, names in
        lower case, in the same order and with the same values. Made for the hot
        path: what depends only on the limit and window is encoded once."""
        limit = self.limit
        remaining = self.remaining
        if type(limit) is not int or type(remaining) is not int or type(policy) is not str:
            # Not a limiter's decision (ints): the general path, same result.
            named = self.headers(window=window, policy=policy)
            return [(k.lower().encode(), v.encode()) for k, v in named.items()]
        slot = (policy, limit, window)
        fixed = _FIXED.get(slot)
        if fixed is None:
            if len(_FIXED) >= _FIXED_CAP:
                _FIXED.clear()
            fixed = _FIXED[slot] = _fixed_fields(policy, limit, window)
        quota, limit_field, state = fixed
        left = b"%d" % remaining
        reset = b"%d" % _whole_seconds(self.reset_after)
        fields = [
            quota,
            (b"ratelimit", state + left + b";t=" + reset),
            limit_field,
            (b"x-ratelimit-remaining", left),
            (b"x-ratelimit-reset", reset),
        ]
        if not self.allowed:
            fields.append((b"retry-after", b"%d" % self.retry_after_seconds))
        return fields


class RateLimitExceeded(ButtressError):
    """A call was refused by a rate limiter; ``retry_after`` says when to try again."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.retry_after = decision.retry_after
        super().__init__(
            f"rate limit exceeded ({decision.limit} units); retry after {decision.retry_after:.3f}s"
        )


@attrs.frozen(slots=True)
class RateLimitDecided:
    """A rate limiter admitted (``allowed``) or refused a request of ``cost`` units.

    ``limiter`` names the limiter, never the key: keys are often user ids.
    """

    limiter: str
    allowed: bool
    cost: int = 1


RATELIMIT_DECIDED: Topic[RateLimitDecided] = Topic("ratelimit.decided")
"""Every ``RateLimiter`` decision that consumed units (``hit``/``ahit``)."""
