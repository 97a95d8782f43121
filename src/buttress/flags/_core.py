"""Pure flag evaluation: the decision order, the stable bucket, and the condition tests.

This file owns the rules and nothing else: it never reads a clock, a store or
a snapshot; ``now`` and the flag are handed in. The order is the contract's,
with targeting rules and splits in between: disabled, schedule, user target,
role target, rules, percentage, split, default. Every condition operator is one
entry of ``_TESTS``; a test answers True, False, or None when it does not apply
(the attribute is of another kind, or too long for ``matches``), and a condition
that does not apply does not match, negated or not. A condition is compiled into
one closure at its first evaluation and keeps it, so a rule costs one call per
condition.
"""

from __future__ import annotations

import functools
import operator as op
from bisect import bisect_right
from collections.abc import Callable, Mapping
from datetime import datetime
from hashlib import blake2b
from re import Pattern
from typing import Final

from buttress.flags._regex import MAX_TEXT
from buttress.flags._targeting import (
    Condition,
    ConditionTest,
    InSet,
    Operator,
    RefusedPattern,
    Rule,
    SemverKey,
    semver_key,
)
from buttress.flags._values import BUCKETS, Flag, FlagContext, FlagEvaluation, Outcome, Reason

__all__ = ["bucket", "decide", "evaluate", "matches", "rollout_warning"]


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
_PERCENTAGE = Reason.PERCENTAGE
_RULE_MATCH = Reason.RULE_MATCH
_SPLIT = Reason.SPLIT
_DEFAULT = Reason.DEFAULT

_OFF: Final[Outcome] = (False, _DISABLED, None, None)
_SCHEDULED_OFF: Final[Outcome] = (False, Reason.SCHEDULED_OFF, None, None)
_USER_TARGET: Final[Outcome] = (True, Reason.USER_TARGET, None, "on")
_ROLE_TARGET: Final[Outcome] = (True, Reason.ROLE_TARGET, None, "on")
_EVERYONE_IN: Final[Outcome] = (True, _PERCENTAGE, None, "on")
_ANONYMOUS_OUT: Final[Outcome] = (False, _PERCENTAGE, None, "off")


# -- condition tests ----------------------------------------------------------------------
# Each operator's entry takes the prepared operand and returns a test of one attribute
# value: True, False, or None when it does not apply (a value of another kind). A
# condition is compiled once into a closure over its operand, its attribute and its
# negation (``_compile``), so evaluation is one call per condition.

Check = Callable[[object], bool | None]


def _is_number(value: object) -> bool:
    return (type(value) is int or type(value) is float) or (
        isinstance(value, int | float) and not isinstance(value, bool)
    )


def _equals(expected: object) -> Check:
    if type(expected) is bool:
        return lambda actual: actual is expected  # True is never 1, False never 0

    def test(actual: object) -> bool:
        return type(actual) is not bool and (actual == expected) is True

    return test


def _in(expected: object) -> Check:
    assert isinstance(expected, InSet)
    values, bools = expected.values, expected.bools

    def test(actual: object) -> bool:
        if type(actual) is bool:
            return actual in bools
        return actual in values  # an unhashable value raises TypeError: no match

    return test


def _numeric(compare: Callable[[float, float], bool]) -> Callable[[object], Check]:
    def prepare(expected: object) -> Check:
        def test(actual: object) -> bool | None:
            if not _is_number(actual):
                return None
            return compare(actual, expected)  # type: ignore[arg-type]  # both numbers, checked

        return test

    return prepare


def _semver(compare: Callable[[SemverKey, SemverKey], bool]) -> Callable[[object], Check]:
    def prepare(expected: object) -> Check:
        def test(actual: object) -> bool | None:
            key = semver_key(actual) if type(actual) is str else None
            if key is None:
                return None
            return compare(key, expected)  # type: ignore[arg-type]  # a key prepared at build

        return test

    return prepare


def _text(compare: Callable[[str, str], bool]) -> Callable[[object], Check]:
    def prepare(expected: object) -> Check:
        def test(actual: object) -> bool | None:
            if not isinstance(actual, str):
                return None
            return compare(actual, expected)  # type: ignore[arg-type]  # a str checked at build

        return test

    return prepare


def _does_not_apply(actual: object) -> None:
    return None


def _matches(expected: object) -> Check:
    if isinstance(expected, RefusedPattern):
        return _does_not_apply  # a stored pattern refused today (logged when loaded)
    assert isinstance(expected, Pattern)
    search = expected.search

    def test(actual: object) -> bool | None:
        if not isinstance(actual, str) or len(actual) > MAX_TEXT:
            return None  # longer text would let searching take too long: it does not apply
        return search(actual) is not None

    return test


_TESTS: Final[Mapping[Operator, Callable[[object], Check]]] = {
    Operator.EQUALS: _equals,
    Operator.IN: _in,
    Operator.LT: _numeric(op.lt),
    Operator.LTE: _numeric(op.le),
    Operator.GT: _numeric(op.gt),
    Operator.GTE: _numeric(op.ge),
    Operator.SEMVER_EQ: _semver(op.eq),
    Operator.SEMVER_LT: _semver(op.lt),
    Operator.SEMVER_LTE: _semver(op.le),
    Operator.SEMVER_GT: _semver(op.gt),
    Operator.SEMVER_GTE: _semver(op.ge),
    Operator.STARTS_WITH: _text(str.startswith),
    Operator.ENDS_WITH: _text(str.endswith),
    Operator.CONTAINS: _text(str.__contains__),
    Operator.MATCHES: _matches,
}


def _compile(condition: Condition) -> ConditionTest:
    """The condition as one closure; kept on the condition, so built once per condition."""
    check = _TESTS[condition.operator](condition.operand)
    want = not condition.negate  # negated: it matches when the test answers False, not None
    name = condition.attribute
    source = 1 if name == "user_id" else 2 if name == "role" else 0

    def test(user_id: str | None, role: str | None, attributes: Mapping[str, object]) -> bool:
        actual = attributes.get(name) if source == 0 else user_id if source == 1 else role
        if actual is None:
            return False  # a missing attribute never matches, negated or not
        try:
            return check(actual) is want
        except (TypeError, ValueError, RecursionError):  # a foreign object refusing to compare
            return False

    object.__setattr__(condition, "compiled", test)
    return test


def matches(
    condition: Condition, user_id: str | None, role: str | None, attributes: Mapping[str, object]
) -> bool:
    """Whether ``condition`` holds for this context; never raises on any attribute value."""
    test = condition.compiled or _compile(condition)
    return test(user_id, role, attributes)


def _pick(names: tuple[tuple[str, float], ...], bounds: tuple[int, ...], user_bucket: int) -> str:
    return names[bisect_right(bounds, user_bucket)][0]


def _serve(flag: Flag, reason: Reason, user_bucket: int | None, variant: str | None) -> Outcome:
    return variant in flag.on_variants, reason, user_bucket, variant


def _first_rule(
    flag: Flag, user_id: str | None, role: str | None, attributes: Mapping[str, object]
) -> Outcome | None:
    rule: Rule
    for rule in flag.rules:
        for condition in rule.when:
            test = condition.compiled or _compile(condition)
            if not test(user_id, role, attributes):
                break
        else:
            if rule.split:
                if user_id is None:
                    continue  # no bucket without a user id: the rule cannot pick
                user_bucket = bucket(flag.key, user_id)
                return _serve(
                    flag, _RULE_MATCH, user_bucket, _pick(rule.split, rule.bounds, user_bucket)
                )
            return _serve(flag, _RULE_MATCH, None, rule.variant or "on")
    return None


def _in_schedule(flag: Flag, now: datetime) -> bool:
    if flag.enable_at is not None and now < flag.enable_at:
        return False
    return not (flag.disable_at is not None and now >= flag.disable_at)


_NO_ATTRIBUTES: Final[Mapping[str, object]] = {}


def decide(
    flag: Flag,
    user_id: str | None,
    role: str | None,
    now: datetime,
    attributes: Mapping[str, object] = _NO_ATTRIBUTES,
) -> Outcome:
    """The decision as a plain tuple ``(on, reason, bucket, variant)``: the one core.

    A caller without a user id is outside any partial rollout or split: under a
    percentage it is on only at 100%, a rule with a split does not apply to it,
    and the flag's split serves it the default variant (an anonymous caller has
    no stable bucket, and a random one would flip between calls).
    """
    if not flag.enabled:
        return _OFF
    if flag.scheduled and not _in_schedule(flag, now):
        return _SCHEDULED_OFF
    if user_id is not None and user_id in flag.users:
        return _USER_TARGET
    if role is not None and role in flag.roles:
        return _ROLE_TARGET
    if flag.rules:
        outcome = _first_rule(flag, user_id, role, attributes)
        if outcome is not None:
            return outcome
    if flag.percentage > 0:
        if user_id is None:
            return _EVERYONE_IN if flag.percentage >= 100 else _ANONYMOUS_OUT
        user_bucket = bucket(flag.key, user_id)
        if user_bucket < flag.threshold:
            return True, _PERCENTAGE, user_bucket, "on"
        return False, _PERCENTAGE, user_bucket, "off"
    if flag.split and user_id is not None:
        user_bucket = bucket(flag.key, user_id)
        return _serve(flag, _SPLIT, user_bucket, _pick(flag.split, flag.split_bounds, user_bucket))
    return flag.fallthrough


def evaluate(flag: Flag, context: FlagContext | None, now: datetime) -> FlagEvaluation:
    """Decide ``flag`` for ``context`` at ``now`` (aware) and say which rule decided."""
    if context is None:
        on, reason, user_bucket, variant = decide(flag, None, None, now)
    else:
        on, reason, user_bucket, variant = decide(
            flag, context.user_id, context.role, now, context.attributes
        )
    value = None if variant is None else flag.served[variant]
    return FlagEvaluation(flag.key, on, reason, user_bucket, variant, value)


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
