"""``matches`` refuses regular expressions that could backtrack catastrophically.

Work is counted, never timed: ``backtracking.py`` runs a pattern the way ``re``
does and counts its steps. A pattern the check accepts must cost work linear in
the text's length at each starting position (so ``re.search`` over a value of at
most ``MAX_TEXT`` characters is bounded); the families it refuses are shown to
blow up in the same counter. The timings live in ``benchmarks/flags.py``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from backtracking import TooManySteps, compile_pattern, run
from buttress.errors import ValidationError
from buttress.flags import Condition, FeatureFlags, Flag, FlagContext, Reason, evaluate, matches
from buttress.flags._regex import (
    BACKREFERENCE,
    LOOKAROUND,
    MAX_PATTERN,
    MAX_TEXT,
    NESTED,
    OVERLAPPING,
    TOO_LONG,
    refusal,
)
from buttress.flags._store import MemoryFlagStore

GOOD = [
    r"^[a-z0-9._%+-]+@example\.com$",
    r"(foo|bar)+",
    r"^v\d+\.\d+",
    r".*beta.*",
    r"@(acme|example)\.com$",
    r"^[A-Z]{2}$",
    r"(?i)acme",
    r"^v\d+(\.\d+)*$",  # nested repetition, but a dot starts each round: one way only
    r"^(\d+\.)*\d+$",
    r"(\w+\.)+com",
    r"(a|ab)+",  # a round is "a" or "ab": any text has one way through
    r"^\d{1,3}(\.\d{1,3}){3}$",
    r"^[0-9a-f]{32}$",
    r"(?i)(foo|bar)+",
    r"^(alice|albert|alfred|alan|alex)$",
    r"foo.*bar",
    r"^(?!test-)",
    r"\bbeta\b",
    r"^[^@]+@[^@]+$",
    r"^https?://[^/]+/",
    r"^(ios|android)-\d+$",
    r"Mozilla/5\.0 .*Chrome/(\d+)",
    r"^\+?[1-9]\d{1,14}$",
    r"^[a-z]+(-[a-z]+)*$",
    r"^(\w+)(,\s*\w+)*$",
    r"(?i)\b(chrome|firefox|safari)/\d+",
    r"(\w|\d)+$",  # re's parser makes the two branches one class
    "",
]

BAD = [
    (r"(a+)+$", NESTED),
    (r"(a|a)*$", NESTED),
    (r"(a*)*$", NESTED),
    (r"(a?b?)*$", NESTED),
    (r"((a?|b?)c)*$", NESTED),
    (r"(a{1,2})+$", NESTED),
    (r"^(\w+\s?)*$", NESTED),
    (r"(x+x+)+y", NESTED),
    (r"(\d+|\w+)*$", NESTED),
    (r"^(([a-z])+.)+[A-Z]([a-z])+$", NESTED),
    (r"(?i)(kx|\u212ax)+$", NESTED),  # the Kelvin sign is a k, ignoring case
    (r"\d+\d+x", OVERLAPPING),
    (r".*a.*b", OVERLAPPING),
    (r"a*a*b", OVERLAPPING),
    (r"[a-z]+[0-9a-z]+!", OVERLAPPING),
    (r"\s*\s*$", OVERLAPPING),
    (r"a.*a.*a.*b", OVERLAPPING),
    (r".*foo.*bar.*", OVERLAPPING),
    (r"(a?){16}a{16}", OVERLAPPING),
    (r"(a)\1", BACKREFERENCE),
    (r"(?P<x>a)(?P=x)", BACKREFERENCE),
    (r"(a)?(?(1)b|c)", BACKREFERENCE),
    (r"(?=.*x)a", LOOKAROUND),
    (r"a(?!b+c)", LOOKAROUND),
]

BUDGET = 2_000_000


def per_start_steps(pattern: str, unit: str, tail: str, length: int) -> int:
    """The most steps one starting position costs on ``unit`` repeated to ``length``."""
    program = compile_pattern(pattern)
    text = (unit * length)[:length] + tail
    return max(run(program, text, start, BUDGET)[1] for start in range(len(unit)))


def grows_linearly(pattern: str, unit: str, tail: str) -> bool:
    """Four times the text costs at most about four times the work (plus a constant)."""
    short = per_start_steps(pattern, unit, tail, 50)
    return per_start_steps(pattern, unit, tail, 200) <= 4.5 * short + 200


@pytest.mark.parametrize("pattern", GOOD)
def test_legitimate_patterns_are_accepted_and_cost_linear_work(pattern: str) -> None:
    assert refusal(pattern) is None
    Condition("v", "matches", pattern)  # builds
    for unit in ("a", "1", "ab", "a.", "x y", "foo"):
        assert grows_linearly(pattern, unit, "!")


@pytest.mark.parametrize(("pattern", "rule"), BAD)
def test_catastrophic_patterns_are_refused_with_the_reason(pattern: str, rule: str) -> None:
    assert refusal(pattern) == rule
    with pytest.raises(ValidationError) as caught:
        Condition("v", "matches", pattern)
    assert caught.value.field == "value"
    assert caught.value.rule == f"{rule} (condition on 'v')"


def test_the_trial_pattern_is_refused_and_blows_up_when_run() -> None:
    rule = {"attribute": "v", "operator": "matches", "value": "(a+)+$"}
    with pytest.raises(ValidationError) as caught:
        Flag.from_dict({"key": "f", "name": "f", "rules": [{"when": [rule]}]})
    assert caught.value.field == "rules[0].when[0].value"
    assert "nested repetition could take exponential time" in str(caught.value)
    with pytest.raises(TooManySteps):  # 27 a's and "!": what took 13.5 s in re
        run(compile_pattern("(a+)+$"), "a" * 27 + "!", 0, BUDGET)


@pytest.mark.parametrize(
    ("pattern", "unit"),
    [(r"\d+\d+x", "1"), (r".*a.*b", "a"), (r"\s*\s*$", " "), (r".*foo.*bar.*", "foo")],
)
def test_refused_overlapping_repetitions_cost_more_than_linear_work(
    pattern: str, unit: str
) -> None:
    assert refusal(pattern) == OVERLAPPING
    assert not grows_linearly(pattern, unit, "!")


_PUMPED = {  # atom: (text it repeats over, a character that makes the match fail)
    "a": ("a", "!"),
    "ab": ("ab", "!"),
    r"\d": ("1", "!"),
    r"\w": ("a", "!"),
    "[ab]": ("b", "!"),
    "[^b]": ("a", "b"),
    ".": ("a", "\n\n"),  # $ matches before a last newline
    "(?:a|b)": ("a", "!"),
    "x?y": ("y", "!"),
}
_ATOMS = st.sampled_from(sorted(_PUMPED))


@settings(max_examples=40, deadline=None)
@given(_ATOMS, st.sampled_from(["+", "*", "{1,4}"]), st.sampled_from(["+", "*"]))
def test_a_repetition_of_a_repetition_is_refused_and_blows_up(
    atom: str, inner: str, outer: str
) -> None:
    pattern = f"(?:(?:{atom}){inner}){outer}$"
    assert refusal(pattern) == NESTED
    unit, tail = _PUMPED[atom]
    with pytest.raises(TooManySteps):
        run(compile_pattern(pattern), unit * 30 + tail, 0, 100_000)


@settings(max_examples=40, deadline=None)
@given(_ATOMS, st.sampled_from(["+", "*"]))
def test_two_repetitions_of_the_same_characters_in_a_row_are_refused(
    atom: str, quantifier: str
) -> None:
    pattern = f"(?:{atom}){quantifier}(?:{atom}){quantifier}$"
    assert refusal(pattern) in (NESTED, OVERLAPPING)
    unit, tail = _PUMPED[atom]
    assert not grows_linearly(pattern, unit, tail)


def test_the_length_limits() -> None:
    assert refusal("a" * MAX_PATTERN) is None
    assert refusal("a" * (MAX_PATTERN + 1)) == TOO_LONG
    with pytest.raises(ValidationError, match="longer than 500 characters"):
        Condition("v", "matches", "a" * (MAX_PATTERN + 1))


def test_only_four_characters_beyond_ascii_fold_to_an_ascii_letter() -> None:
    """The check's case-insensitive sets rely on this (``_FOLDS_BEYOND_ASCII``)."""
    every = "".join(map(chr, range(0x80, 0x110000)))
    found = {match.group() for match in re.finditer(r"(?i)[a-z]", every)}
    assert found == {"\u0130", "\u0131", "\u017f", "\u212a"}


# -- any pattern the check accepts costs linear work per starting position -------------

_LEAVES = st.sampled_from(
    ["a", "b", "ab", ".", r"\d", r"\w", r"\s", "[ab]", "[^a]", "x", "1", " ", "[a-c]", r"\W",
     r"\b", "$", "^", "(?i:A)"]
)  # fmt: skip
_QUANTIFIERS = st.sampled_from(["*", "+", "?", "{1,3}", "{2}", "{0,2}", "*?", "+?", "{2,}"])


def _quantified(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(inner, _QUANTIFIERS).map(lambda pair: f"(?:{pair[0]}){pair[1]}")


_PATTERNS = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map("".join),
        st.lists(inner, min_size=2, max_size=3).map(lambda parts: "(" + "|".join(parts) + ")"),
        inner.map(lambda part: f"({part})"),
        _quantified(inner),
    ),
    max_leaves=8,
)
_UNITS = st.text(st.sampled_from("ab1 xA!_c"), min_size=1, max_size=3)


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(_PATTERNS, _UNITS, st.sampled_from(["!", "\n", ""]))
def test_every_accepted_pattern_costs_linear_work_per_start(
    pattern: str, unit: str, tail: str
) -> None:
    assume(_compiles(pattern) and refusal(pattern) is None)
    assert grows_linearly(pattern, unit, tail)


@settings(max_examples=300, deadline=None)
@given(_PATTERNS, st.text(st.sampled_from("ab1 xA!\n_"), max_size=8))
def test_the_step_counter_matches_like_re(pattern: str, text: str) -> None:
    """The counter's answers are re's, so its counts describe what re does."""
    assume(_compiles(pattern))
    program = compile_pattern(pattern)
    compiled = re.compile(pattern)
    for start in range(len(text) + 1):
        try:
            matched, _steps = run(program, text, start, 100_000)
        except TooManySteps:
            continue
        assert matched is (compiled.match(text, start) is not None)


# -- the longest value matches looks at ---------------------------------------------------


@pytest.mark.parametrize("negate", [False, True])
def test_a_value_longer_than_the_cap_does_not_apply_negated_or_not(negate: bool) -> None:
    condition = Condition("v", "matches", "beta", negate=negate)
    at_cap = "beta".ljust(MAX_TEXT, "x")
    assert matches(condition, None, None, {"v": at_cap}) is not negate
    assert matches(condition, None, None, {"v": at_cap + "x"}) is False


# -- flags stored before the check existed ------------------------------------------------

TRIAL: dict[str, Any] = {
    "key": "f",
    "name": "F",
    "enabled": True,
    "default_variant": "off",
    "rules": [
        {"when": [{"attribute": "email", "operator": "ends_with", "value": "@acme.com"}]},
        {"when": [{"attribute": "v", "operator": "matches", "value": "(a+)+$"}]},
    ],
}
FIELD = "rules[1].when[0].value"
EVIL = {"v": "a" * 27 + "!"}  # 13.5 s in re, were the pattern run


def stored(data: dict[str, Any] = TRIAL, *, negate: bool = False) -> Flag:
    if negate:
        data = json.loads(json.dumps(data))
        data["rules"][1]["when"][0]["negate"] = True
    return Flag.from_dict(data, stored=True)


@pytest.mark.parametrize("negate", [False, True])
def test_a_stored_flag_with_a_refused_pattern_loads_and_that_condition_never_matches(
    negate: bool,
) -> None:
    flag = stored(negate=negate)
    assert flag.problems == ((FIELD, f"{NESTED} (condition on 'v')"),)
    assert flag.rules[1].when[0].refused == NESTED
    assert flag.to_dict() == Flag.from_dict(flag.to_dict(), stored=True).to_dict()  # kept as is
    now = datetime.now(UTC)
    for attributes in (EVIL, {"v": "aaa"}, {"v": "b"}):
        assert not matches(flag.rules[1].when[0], None, None, attributes)
        assert evaluate(flag, FlagContext(attributes=attributes), now).reason is Reason.DEFAULT
    staff = FlagContext(attributes={"email": "ann@acme.com"})
    assert evaluate(flag, staff, now).reason is Reason.RULE_MATCH  # the other rules still work


def test_a_flag_read_from_storage_is_refused_when_written_back() -> None:
    flag = stored()
    with pytest.raises(ValidationError) as caught:
        attrs.evolve(flag, enabled=False)  # what update() and `flags set` do
    assert caught.value.field == FIELD
    with pytest.raises(ValidationError):
        Flag("g", "G", rules=flag.rules)  # its rules, reused in code
    assert Flag.from_dict(TRIAL | {"rules": TRIAL["rules"][:1]}).problems == ()


async def test_feature_flags_serve_a_stored_refused_pattern_and_refuse_to_write_it(
    tmp_path: Path,
) -> None:
    store = MemoryFlagStore()
    at = datetime.now(UTC)
    await store.put(stored(), changed_by="old release", reason=None, at=at)  # as it was stored
    path = tmp_path / "flags.json"
    with capture_logs() as logs:
        async with FeatureFlags(store, refresh_interval=None, snapshot_path=path) as flags:
            assert flags.evaluate("f", FlagContext(attributes=EVIL)).reason is Reason.DEFAULT
            with pytest.raises(ValidationError) as caught:
                await flags.upsert(flags.snapshot["f"])
            assert caught.value.field == FIELD
            with pytest.raises(ValidationError):
                await flags.update("f", enabled=False)
            with pytest.raises(ValidationError):
                await flags.revert("f", 1)
            fixed = Flag.from_dict(TRIAL | {"rules": TRIAL["rules"][:1]})
            await flags.upsert(fixed, reason="drop the catastrophic pattern")
            assert flags.snapshot["f"].problems == ()
    warnings = [e for e in logs if e["event"] == "flags.stored_flag_refused"]
    assert [(e["key"], e["field"], e["log_level"]) for e in warnings] == [("f", FIELD, "warning")]
    assert NESTED in warnings[0]["rule"]

    data = json.loads(path.read_text())  # the snapshot file, as a degraded start reads it
    data["f"] = TRIAL
    path.write_text(json.dumps(data))
    with capture_logs() as logs:
        offline = FeatureFlags(store, refresh_interval=None, snapshot_path=path)
        offline._load_persisted()
        assert offline.snapshot["f"].problems
        assert offline.evaluate("f", FlagContext(attributes=EVIL)).reason is Reason.DEFAULT
    assert [e["field"] for e in logs if e["event"] == "flags.stored_flag_refused"] == [FIELD]
