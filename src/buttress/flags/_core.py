"""Pure flag evaluation: the decision order and the stable percentage bucket.

This file owns the rules and nothing else: it never reads a clock, a store or
a snapshot; ``now`` and the flag are handed in. The order is the contract's:
disabled, schedule, user target, role target, percentage, default.
"""

from __future__ import annotations

import functools
from datetime import datetime
from hashlib import blake2b

from buttress.flags._values import BUCKETS, Flag, FlagContext, FlagEvaluation, Reason

__all__ = ["bucket", "decide", "evaluate", "rollout_warning"]


@functools.lru_cache(maxsize=65_536)
def bucket(flag_key: str, user_id: str) -> int:
    """The user's bucket in [0, 10000) for this flag: stable across processes and versions.

    blake2b of the flag key and the user id (a NUL between them so ``("a", "bc")``
    and ``("ab", "c")`` differ); the flag key in the input makes different flags
    bucket independently. Python's ``hash`` is salted per process, so never that.
    Memoised: hashing costs about a microsecond, a cache hit a fraction of that.
    """
    digest = blake2b(f"{flag_key}\x00{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


# Enum attribute lookups cost a few hundred ns on Python 3.11; bind the members once.
_DISABLED = Reason.DISABLED
_SCHEDULED_OFF = Reason.SCHEDULED_OFF
_USER_TARGET = Reason.USER_TARGET
_ROLE_TARGET = Reason.ROLE_TARGET
_PERCENTAGE = Reason.PERCENTAGE
_DEFAULT = Reason.DEFAULT


def _in_schedule(flag: Flag, now: datetime) -> bool:
    if flag.enable_at is not None and now < flag.enable_at:
        return False
    return not (flag.disable_at is not None and now >= flag.disable_at)


def decide(
    flag: Flag, user_id: str | None, role: str | None, now: datetime
) -> tuple[bool, Reason, int | None]:
    """The decision as a plain tuple ``(enabled, reason, bucket)``: the one core.

    A caller without a user id is outside any partial rollout: under a
    percentage rule it is on only at 100% (an anonymous caller has no stable
    bucket, and a random one would flip between calls).
    """
    if not flag.enabled:
        return False, _DISABLED, None
    if flag.scheduled and not _in_schedule(flag, now):
        return False, _SCHEDULED_OFF, None
    if user_id is not None and user_id in flag.users:
        return True, _USER_TARGET, None
    if role is not None and role in flag.roles:
        return True, _ROLE_TARGET, None
    if flag.percentage > 0:
        if user_id is None:
            return flag.percentage >= 100, _PERCENTAGE, None
        user_bucket = bucket(flag.key, user_id)
        return user_bucket < flag.threshold, _PERCENTAGE, user_bucket
    return True, _DEFAULT, None


def evaluate(flag: Flag, context: FlagContext | None, now: datetime) -> FlagEvaluation:
    """Decide ``flag`` for ``context`` at ``now`` (aware) and say which rule decided."""
    if context is None:
        enabled, reason, user_bucket = decide(flag, None, None, now)
    else:
        enabled, reason, user_bucket = decide(flag, context.user_id, context.role, now)
    return FlagEvaluation(flag.key, enabled, reason, user_bucket)


def rollout_warning(old: Flag | None, new: Flag) -> str | None:
    """A sentence to show when a change moves a flag across "percentage 0 means everyone".

    Percentage 0 is "no rollout rule" (an enabled flag is on for everyone), so
    0 -> 10 narrows a live flag to 10% and 10 -> 0 widens it to everyone. Tools
    that change flags (``buttress flags set``) print this; None when neither applies.
    """
    if not new.enabled or old is None or not old.enabled:
        return None
    if new.percentage == 0 and old.percentage > 0:
        return (
            f"{new.key}: percentage 0 means no rollout rule, "
            f"so this flag is now on for everyone (it was {old.percentage:g}%)"
        )
    if 0 < new.percentage < 100 and old.percentage == 0:
        return (
            f"{new.key}: percentage {new.percentage:g} narrows this flag from everyone "
            f"to {new.percentage:g}% of users (plus listed users and roles)"
        )
    return None
