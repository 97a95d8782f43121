"""Fixed examples that kill the mutants of buttress.ratelimit._core that the property
tests let live (scripts/mutation.py; docs/testing.md, "Mutation testing").

The pure steps take integer nanoseconds, so each example below is chosen off the
microsecond grid: a duration computed without rounding up, or rounded with the
wrong divisor, gives a different float.
"""

from __future__ import annotations

import pytest

from buttress.ratelimit import Decision
from buttress.ratelimit._core import (
    ALGORITHMS,
    MAX_KEY_LENGTH,
    binding,
    fixed_window,
    gcra,
    memory_key,
    sliding_window,
    storage_key,
)

S = 1_000_000_000  # one second in ns


def test_fixed_window_reset_is_rounded_up_to_a_whole_microsecond() -> None:
    # 999_999_999 ns left in the window reads as 1.0 s, never 0.999999999.
    decision, state = fixed_window(None, 1, 2, S, 1)
    assert decision == Decision(True, 2, 1, 1.0, 0.0)
    assert state == (0, 1)


def test_a_report_on_an_unused_fixed_window_has_nothing_to_reset() -> None:
    decision, state = fixed_window(None, 1, 2, S, 0)
    assert decision == Decision(True, 2, 2, 0.0, 0.0)
    assert state == (0, 0)


def test_a_report_on_a_sliding_window_reads_the_newest_unit() -> None:
    # cost 0 reports: allowed, nothing consumed, the state untouched, and the
    # window resets when its newest unit leaves it (250_000_500 ns -> 0.250001 s).
    log = (250_000_500,)
    decision, state = sliding_window(log, S, 3, S, 0)
    assert decision == Decision(True, 3, 2, 250_001 / 1e6, 0.0)
    assert state is log
    empty, none = sliding_window(None, S, 3, S, 0)
    assert empty == Decision(True, 3, 3, 0.0, 0.0)
    assert none is None


def test_a_clock_stepping_back_stamps_with_the_newest_unit() -> None:
    # now is 500 ns before the newest stamp: the new unit is stamped with that
    # newest stamp (the log stays sorted) and the reset counts from it.
    log = (1_500_000_000, 1_600_000_000, 2_000_000_500)
    decision, state = sliding_window(log, 2_000_000_000, 5, S, 1)
    assert decision == Decision(True, 5, 1, 1_000_001 / 1e6, 0.0)
    assert state == (*log, 2_000_000_500)
    decision, state = sliding_window((2_000_000_500,), 2_000_000_000, 5, S, 2)
    assert decision == Decision(True, 5, 2, 1_000_001 / 1e6, 0.0)
    assert state == (2_000_000_500,) * 3


def test_gcra_durations_are_rounded_up_to_a_whole_microsecond() -> None:
    # An emission interval of 1_000_000_001 ns: admitted, the key is full again
    # in 1.000001 s (not 1.000000001).
    decision, state = gcra(None, 0, 1, S + 1, 1)
    assert decision == Decision(True, 1, 0, 1_000_001 / 1e6, 0.0)
    assert state == S + 1
    # Refused 500 ns before the next unit: both waits read as one microsecond.
    refused, kept = gcra(500, 0, 1, S, 1)
    assert refused == Decision(False, 1, 0, 1e-6, 1e-6)
    assert kept == 500


def test_a_sliding_window_refusal_rounds_both_waits_up() -> None:
    # The only unit, admitted at 500 ns, leaves the window at S + 500 ns: from
    # 1000 ns that is 999_999.5 us, read as 1.0 s for the reset and the retry.
    decision, state = sliding_window((500,), 1000, 1, S, 1)
    assert decision == Decision(False, 1, 0, 1.0, 1.0)
    assert state == (500,)


def test_binding_picks_the_longest_wait_not_the_largest_limit() -> None:
    short = Decision(False, 10, 0, 5.0, 1.0)
    long = Decision(False, 5, 0, 5.0, 2.0)
    assert binding([short, long]) == long
    assert binding([long, short]) == long


def test_binding_picks_the_fewest_left_then_the_longest_reset() -> None:
    roomy = Decision(True, 5, 4, 1.0, 0.0)
    tight = Decision(True, 10, 1, 1.0, 0.0)
    assert binding([roomy, tight]) == tight
    tight_longer = Decision(True, 10, 1, 3.0, 0.0)
    assert binding([tight, tight_longer]) == tight_longer
    assert binding([tight_longer, tight]) == tight_longer


@pytest.mark.parametrize(
    ("name", "state"),
    [("gcra", 123), ("fixed_window", (10, 2)), ("sliding_window", (1, 2, 3))],
)
def test_states_survive_a_store_round_trip(name: str, state: object) -> None:
    algorithm = ALGORITHMS[name]
    assert algorithm.load(algorithm.dump(state)) == state


def test_a_key_of_exactly_the_maximum_length_is_kept() -> None:
    at_limit = "k" * MAX_KEY_LENGTH
    assert MAX_KEY_LENGTH == 200
    assert storage_key(at_limit) == at_limit
    assert memory_key(at_limit) == at_limit
    assert storage_key("user:42") == "user:42"
    assert storage_key("ключ") == "ключ"


def test_a_longer_key_becomes_the_same_128_bit_digest_everywhere() -> None:
    # Keys live in Redis and SQL tables across upgrades: the digest of a given key
    # must never change (``~h:`` and 32 hex digits of BLAKE2b-128).
    longer = "x" * (MAX_KEY_LENGTH + 1)
    assert storage_key(longer) == "~h:12bf1cc881648017342067435dc826c6"
    assert memory_key(longer) == storage_key(longer)


def test_a_key_that_looks_like_a_digest_is_digested_again() -> None:
    assert storage_key("~h:abc") == "~h:354c831a4c1798f998998362d4f1cffb"
    # In memory only the length counts.
    assert memory_key("~h:abc") == "~h:abc"
    assert memory_key("a\x00b") == "a\x00b"


@pytest.mark.parametrize("name", ["gcra", "fixed_window", "sliding_window"])
def test_a_state_decides_like_no_state_from_its_expiry_on(name: str) -> None:
    # expires_at is when the memory store may drop a key: from then on the state
    # must decide exactly like a missing one.
    algorithm = ALGORITHMS[name]
    _, state = algorithm.step(None, 5 * S + 123, 3, S, 2)
    assert state is not None
    expiry = algorithm.expires_at(state, S)
    assert algorithm.step(state, expiry, 3, S, 1) == algorithm.step(None, expiry, 3, S, 1)


def test_an_empty_sliding_log_has_already_expired() -> None:
    # An empty log admits like no log at all, at any time since the epoch.
    assert ALGORITHMS["sliding_window"].expires_at((), S) <= 0
    assert sliding_window((), 7, 3, S, 1)[0] == sliding_window(None, 7, 3, S, 1)[0]
