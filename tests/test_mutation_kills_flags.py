"""Fixed examples that kill the mutants of buttress.flags._core that the property
tests let live (scripts/mutation.py; docs/testing.md, "Mutation testing")."""

from __future__ import annotations

import pytest

from buttress.flags import Flag, rollout_warning


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
