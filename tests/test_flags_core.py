"""The pure flag core: model validation, evaluation order, stable bucketing."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from hashlib import blake2b

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.errors import ValidationError
from buttress.flags import (
    FeatureFlags,
    Flag,
    FlagContext,
    FlagEvaluation,
    Reason,
    bucket,
    evaluate,
    rollout_warning,
)
from buttress.testing import FakeClock

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)

USER_POOL = [f"user-{i}" for i in range(6)]
ROLE_POOL = ["admin", "beta", "staff"]

aware_datetimes = st.datetimes(
    min_value=datetime(2025, 5, 1), max_value=datetime(2025, 7, 1), timezones=st.just(UTC)
)
percentages = st.one_of(
    st.sampled_from([0, 0.01, 0.29, 1.1, 0.2900000001, 10, 50, 99.99, 100]),
    st.floats(min_value=0, max_value=100, allow_nan=False),
    st.integers(min_value=0, max_value=100),
)
flag_keys = st.from_regex(r"[a-z0-9_][a-z0-9_.:\-]{0,30}", fullmatch=True)


@st.composite
def flags(draw: st.DrawFn) -> Flag:
    enable_at = draw(st.none() | aware_datetimes)
    disable_at = draw(st.none() | aware_datetimes)
    if enable_at is not None and disable_at is not None and disable_at <= enable_at:
        disable_at = enable_at + timedelta(days=1)
    return Flag(
        draw(flag_keys),
        "a flag",
        enabled=draw(st.booleans()),
        users=draw(st.frozensets(st.sampled_from(USER_POOL), max_size=3)),
        roles=draw(st.frozensets(st.sampled_from(ROLE_POOL), max_size=2)),
        percentage=draw(percentages),
        enable_at=enable_at,
        disable_at=disable_at,
    )


contexts = st.none() | st.builds(
    FlagContext,
    user_id=st.none() | st.sampled_from(USER_POOL) | st.text(max_size=10),
    role=st.none() | st.sampled_from([*ROLE_POOL, "guest"]),
)


def reference_bucket(flag_key: str, user_id: str) -> int:
    digest = blake2b((flag_key + "\0" + user_id).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000


def reference(flag: Flag, context: FlagContext | None, now: datetime) -> tuple[bool, Reason]:
    """The contract's order, written out independently of the implementation."""
    user = context.user_id if context else None
    role = context.role if context else None
    if not flag.enabled:
        return False, Reason.DISABLED
    if flag.enable_at is not None and now < flag.enable_at:
        return False, Reason.SCHEDULED_OFF
    if flag.disable_at is not None and now >= flag.disable_at:
        return False, Reason.SCHEDULED_OFF
    if user is not None and user in flag.users:
        return True, Reason.USER_TARGET
    if role is not None and role in flag.roles:
        return True, Reason.ROLE_TARGET
    if flag.percentage > 0:
        if user is None:
            return flag.percentage == 100, Reason.PERCENTAGE
        on = Fraction(reference_bucket(flag.key, user), 100) < Fraction(repr(flag.percentage))
        return on, Reason.PERCENTAGE
    return True, Reason.DEFAULT


@given(flags(), contexts, aware_datetimes)
def test_evaluation_matches_the_reference_order(
    flag: Flag, context: FlagContext | None, now: datetime
) -> None:
    result = evaluate(flag, context, now)
    assert (result.enabled, result.reason) == reference(flag, context, now)
    assert result.key == flag.key


def test_each_rule_decides_in_contract_order() -> None:
    base = Flag("f", "F", enabled=True, users={"u1"}, roles={"admin"}, percentage=50)
    assert evaluate(base, FlagContext("u1"), NOW).reason is Reason.USER_TARGET
    assert evaluate(base, FlagContext("zz", role="admin"), NOW).reason is Reason.ROLE_TARGET
    assert evaluate(base, FlagContext("zz"), NOW).reason is Reason.PERCENTAGE
    off = Flag("f", "F", enabled=False, users={"u1"})
    assert evaluate(off, FlagContext("u1"), NOW) == FlagEvaluation("f", False, Reason.DISABLED)
    later = Flag("f", "F", enabled=True, users={"u1"}, enable_at=NOW + timedelta(seconds=1))
    assert evaluate(later, FlagContext("u1"), NOW).reason is Reason.SCHEDULED_OFF
    assert evaluate(Flag("f", "F", enabled=True), None, NOW).reason is Reason.DEFAULT


def test_schedule_is_half_open() -> None:
    flag = Flag("f", "F", enabled=True, enable_at=NOW, disable_at=NOW + timedelta(hours=1))
    assert evaluate(flag, None, NOW).enabled
    assert evaluate(flag, None, NOW + timedelta(minutes=59)).enabled
    assert not evaluate(flag, None, NOW + timedelta(hours=1)).enabled
    assert not evaluate(flag, None, NOW - timedelta(microseconds=1)).enabled


def test_schedule_compares_instants_across_timezones() -> None:
    plus_two = timezone(timedelta(hours=2))
    flag = Flag("f", "F", enabled=True, enable_at=datetime(2025, 6, 1, 14, tzinfo=plus_two))
    assert evaluate(flag, None, NOW).enabled  # 14:00+02:00 is 12:00 UTC


def test_percentage_zero_means_the_switch_decides_and_ten_narrows() -> None:
    everyone = Flag("f", "F", enabled=True, percentage=0)
    users = [FlagContext(f"u{i}") for i in range(200)]
    assert all(evaluate(everyone, c, NOW).enabled for c in users)
    narrowed = Flag("f", "F", enabled=True, percentage=10)
    on = sum(evaluate(narrowed, c, NOW).enabled for c in users)
    assert 0 < on < 60


def test_context_without_user_id_is_outside_a_partial_rollout() -> None:
    for percentage in (0.01, 50, 99.99):
        flag = Flag("f", "F", enabled=True, percentage=percentage)
        for context in (None, FlagContext(), FlagContext(role="guest")):
            result = evaluate(flag, context, NOW)
            assert result == FlagEvaluation("f", False, Reason.PERCENTAGE, None, "off", False)
    full = Flag("f", "F", enabled=True, percentage=100)
    everyone = FlagEvaluation("f", True, Reason.PERCENTAGE, None, "on", True)
    assert evaluate(full, None, NOW) == everyone
    almost = Flag("f", "F", enabled=True, percentage=99.99999999999999)
    assert almost.threshold == 10_000  # every bucket...
    assert not evaluate(almost, None, NOW).enabled  # ...but not quite everyone
    # A role target still admits an anonymous caller before the percentage rule.
    targeted = Flag("f", "F", enabled=True, roles={"staff"}, percentage=5)
    assert evaluate(targeted, FlagContext(role="staff"), NOW).enabled


def test_bucket_values_are_pinned_across_processes_and_versions() -> None:
    assert bucket("new-checkout", "user-1") == 93
    assert bucket("new-checkout", "user-2") == 8804
    assert bucket("dark-mode", "user-1") == 5063
    assert bucket("dark-mode", "alice") == 3680


@given(flag_keys, st.text(max_size=40))
def test_bucket_is_in_range_and_matches_reference(key: str, user: str) -> None:
    assert 0 <= bucket(key, user) < 10_000
    assert bucket(key, user) == reference_bucket(key, user)


@settings(max_examples=30, deadline=None)
@given(flag_keys, st.sampled_from([10, 25, 50]))
def test_bucketing_is_uniform_over_20000_users(key: str, percentage: int) -> None:
    # Through evaluate(), the decision users get, not a re-derivation of it.
    flag = Flag(key, "F", enabled=True, percentage=percentage)
    on = sum(evaluate(flag, FlagContext(f"user-{i}"), NOW).enabled for i in range(20_000))
    assert math.isclose(on / 20_000 * 100, percentage, abs_tol=1.5)


@settings(max_examples=500)
@given(flag_keys, st.text(min_size=1, max_size=20), percentages, percentages)
def test_raising_the_percentage_never_turns_a_user_off(
    key: str, user: str, first: float, second: float
) -> None:
    low, high = sorted((first, second))
    context = FlagContext(user)
    before = evaluate(Flag(key, "F", enabled=True, percentage=low), context, NOW)
    after = evaluate(Flag(key, "F", enabled=True, percentage=high), context, NOW)
    if before.enabled and before.reason is Reason.PERCENTAGE:
        assert after.enabled


@settings(max_examples=20, deadline=None)
@given(st.lists(flag_keys, min_size=2, max_size=2, unique=True))
def test_different_flags_bucket_independently(keys: list[str]) -> None:
    first, second = (Flag(key, "F", enabled=True, percentage=50) for key in keys)
    both = sum(
        evaluate(first, FlagContext(f"u{i}"), NOW).enabled
        and evaluate(second, FlagContext(f"u{i}"), NOW).enabled
        for i in range(20_000)
    )
    assert math.isclose(both / 20_000 * 100, 25, abs_tol=1.5)


def test_percentage_honours_hundredths() -> None:
    assert Flag("f", "F", percentage=0.01).threshold == 1
    assert Flag("f", "F", percentage=1.1).threshold == 110
    assert Flag("f", "F", percentage=0.29).threshold == 29
    assert Flag("f", "F", percentage=33.333).threshold == 3334  # bucket 3333 is 33.33 < 33.333
    assert Flag("f", "F", percentage=0.001).threshold == 1  # any positive percentage admits some
    assert Flag("f", "F", percentage=100).threshold == 10_000


@pytest.mark.parametrize("percentage", [-0.01, 100.01, math.nan, math.inf, True, "50"])
def test_percentage_outside_0_to_100_is_refused(percentage: object) -> None:
    with pytest.raises(ValidationError) as info:
        Flag("f", "F", percentage=percentage)  # type: ignore[arg-type]  # bad input on purpose
    assert info.value.field == "percentage"


def test_disable_at_not_after_enable_at_is_refused() -> None:
    with pytest.raises(ValidationError, match="disable_at: must be after enable_at"):
        Flag("f", "F", enable_at=NOW, disable_at=NOW - timedelta(seconds=1))
    with pytest.raises(ValidationError, match="disable_at"):
        Flag("f", "F", enable_at=NOW, disable_at=NOW)


@pytest.mark.parametrize("key", ["", " ", "has space", "-leading", "x" * 201])
def test_bad_keys_are_refused(key: str) -> None:
    with pytest.raises(ValidationError) as info:
        Flag(key, "F")
    assert info.value.field == "key"


def test_empty_key_error_names_the_rule() -> None:
    with pytest.raises(ValidationError, match="key: must not be empty"):
        Flag("", "F")


@pytest.mark.parametrize("field", ["enable_at", "disable_at"])
def test_naive_datetimes_are_refused(field: str) -> None:
    with pytest.raises(ValidationError, match=f"{field}: must be timezone-aware"):
        Flag("f", "F", **{field: datetime(2025, 1, 1)})  # type: ignore[arg-type]  # kwargs by name


def test_users_as_a_bare_string_is_refused() -> None:
    with pytest.raises(ValidationError, match="single str"):
        Flag("f", "F", users="alice")


def test_flag_round_trips_through_dict() -> None:
    flag = Flag(
        "f",
        "F",
        description="d",
        enabled=True,
        users={"b", "a"},
        roles={"r"},
        percentage=12.5,
        enable_at=NOW,
        disable_at=NOW + timedelta(days=1),
    )
    data = flag.to_dict()
    assert data["users"] == ["a", "b"]
    assert Flag.from_dict(data) == flag


def test_context_attributes_are_read_only() -> None:
    source = {"plan": "pro"}
    context = FlagContext("u", attributes=source)
    source["plan"] = "free"
    assert context.attributes["plan"] == "pro"
    with pytest.raises(TypeError):
        context.attributes["plan"] = "x"  # type: ignore[index]  # proving it is read-only


def test_rollout_warning_names_the_zero_percent_trap() -> None:
    live = Flag("f", "F", enabled=True)
    narrowed = Flag("f", "F", enabled=True, percentage=10)
    warning = rollout_warning(live, narrowed)
    assert warning == (
        "f: percentage 10 narrows this flag from everyone to 10% of users "
        "(plus listed users and roles)"
    )
    assert rollout_warning(narrowed, live) == (
        "f: percentage 0 means no rollout rule, so this flag is now on for everyone (it was 10%)"
    )
    assert rollout_warning(narrowed, Flag("f", "F", enabled=True, percentage=50)) is None
    assert rollout_warning(Flag("f", "F"), narrowed) is None  # it was off for everyone
    assert rollout_warning(None, narrowed) is None  # a new flag narrows nothing
    assert rollout_warning(live, Flag("f", "F", percentage=10)) is None  # switched off anyway


@given(flags(), contexts, aware_datetimes)
def test_the_hot_path_agrees_with_evaluate(
    flag: Flag, context: FlagContext | None, now: datetime
) -> None:
    clock = FakeClock(now)
    feature_flags = FeatureFlags(clock=clock, refresh_interval=None)
    feature_flags._apply(flag.key, flag)
    expected = evaluate(flag, context, now)
    assert feature_flags.is_enabled(flag.key, context) is expected.enabled
    assert feature_flags.evaluate(flag.key, context) == expected
