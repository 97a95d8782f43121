"""Fixed examples that kill the mutants of buttress.flags._core that the property
tests let live (scripts/mutation.py; docs/testing.md, "Mutation testing")."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from buttress.flags import Flag, FlagContext, Reason, evaluate, rollout_warning


def flag(percentage: float) -> Flag:
    return Flag("f", "F", enabled=True, percentage=percentage)


@pytest.mark.parametrize("old", [0.5, 1])
def test_any_rollout_moved_to_zero_widens_to_everyone(old: float) -> None:
    # p -> 0 widens a live flag to everyone for every p > 0, fractions included.
    assert rollout_warning(flag(old), flag(0)) == (
        f"f: percentage 0 means no rollout rule, so this flag is now on for everyone "
        f"(it was {old:g}%)"
    )


@pytest.mark.parametrize("new", [0.5, 1])
def test_any_rollout_from_zero_below_100_narrows(new: float) -> None:
    assert rollout_warning(flag(0), flag(new)) == (
        f"f: percentage {new:g} narrows this flag from everyone to {new:g}% of users "
        "(plus listed users and roles)"
    )


@pytest.mark.parametrize(("old", "new"), [(0, 0), (0, 100), (100, 100), (50, 100)])
def test_changes_that_keep_everyone_or_a_rollout_warn_of_nothing(old: float, new: float) -> None:
    # 0 and 100 are both "everyone": moving between them, or staying, crosses nothing.
    assert rollout_warning(flag(old), flag(new)) is None


def test_a_listed_user_or_role_is_on_whatever_the_rollout() -> None:
    # docs/flags.md: listed users and roles are on before the percentage rule runs.
    now = datetime(2025, 6, 1, tzinfo=UTC)
    narrow = Flag("f", "F", enabled=True, percentage=0.01, users=("ann",), roles=("staff",))
    by_user = evaluate(narrow, FlagContext("ann"), now)
    assert (by_user.enabled, by_user.reason, by_user.bucket) == (True, Reason.USER_TARGET, None)
    by_role = evaluate(narrow, FlagContext("bob", role="staff"), now)
    assert (by_role.enabled, by_role.reason, by_role.bucket) == (True, Reason.ROLE_TARGET, None)
    # Off for a flag that is switched off, listed or not.
    off = Flag("f", "F", enabled=False, users=("ann",))
    assert not evaluate(off, FlagContext("ann"), now).enabled
