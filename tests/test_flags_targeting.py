"""Targeting rules, variants and splits in the pure core: validation, operator semantics
against a reference written out separately, evaluation order, split stability."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from buttress.config import JSONValue
from buttress.errors import ValidationError
from buttress.flags import (
    Condition,
    Flag,
    FlagContext,
    Operator,
    Reason,
    Rule,
    bucket,
    evaluate,
    matches,
)
from buttress.testing.strategies import (
    ATTRIBUTES,
    conditions,
    flag_contexts,
    flag_keys,
    splits,
    variant_flags,
)

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
USERS = [f"user-{i}" for i in range(20_000)]


# -- a reference for the operators, written from the documentation -------------------------


def reference_semver(text: str) -> tuple[Any, ...] | None:
    """semver.org section 11, spelled out: core numbers, then pre-release rules."""
    core, _, _build = text.partition("+")
    if "+" in _build or (_build == "" and text.endswith("+")):
        return None
    main, dash, pre = core.partition("-")
    numbers = main.split(".")
    if len(numbers) != 3 or not all(n.isdigit() and n.isascii() for n in numbers):
        return None
    if any(len(n) > 1 and n.startswith("0") for n in numbers):
        return None
    allowed = re.compile(r"[0-9A-Za-z-]+")
    if _build and not all(allowed.fullmatch(part) for part in _build.split(".")):
        return None
    if not dash:
        return (*map(int, numbers), 1)
    parts = pre.split(".")
    for part in parts:
        if not allowed.fullmatch(part):
            return None
        if part.isdigit() and len(part) > 1 and part.startswith("0"):
            return None
    ranked = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)
    return (*map(int, numbers), 0, ranked)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def reference_matches(condition: Condition, context: FlagContext) -> bool:
    if condition.attribute == "user_id":
        actual: object = context.user_id
    elif condition.attribute == "role":
        actual = context.role
    else:
        actual = context.attributes.get(condition.attribute)
    if actual is None:
        return False
    name, expected = condition.operator.value, condition.value
    result: bool | None
    if name == "equals":
        result = (type(actual) is type(expected) and actual == expected) or (
            _number(actual) and _number(expected) and actual == expected
        )
    elif name == "in":
        assert isinstance(expected, tuple)
        result = any(
            (type(actual) is type(v) and actual == v)
            or (_number(actual) and _number(v) and actual == v)
            for v in expected
        )
    elif name in ("lt", "lte", "gt", "gte"):
        if not _number(actual):
            return False
        a, b = float(actual), float(expected)  # type: ignore[arg-type]  # numbers, checked
        result = {"lt": a < b, "lte": a <= b, "gt": a > b, "gte": a >= b}[name]
    elif name.startswith("semver_"):
        mine = reference_semver(actual) if isinstance(actual, str) else None
        theirs = reference_semver(str(expected))
        if mine is None or theirs is None:
            return False
        result = {
            "semver_eq": mine == theirs,
            "semver_lt": mine < theirs,
            "semver_lte": mine <= theirs,
            "semver_gt": mine > theirs,
            "semver_gte": mine >= theirs,
        }[name]
    else:
        if not isinstance(actual, str):
            return False
        text = str(expected)
        result = {
            "starts_with": actual[: len(text)] == text,
            "ends_with": text == "" or actual[-len(text) :] == text,
            "contains": text in actual,
            "matches": re.search(text, actual) is not None,
        }[name]
    return result != condition.negate


@settings(max_examples=600)
@given(conditions(), flag_contexts())
def test_every_operator_agrees_with_the_reference(
    condition: Condition, context: FlagContext
) -> None:
    expected = reference_matches(condition, context)
    assert matches(condition, context.user_id, context.role, context.attributes) is expected


@pytest.mark.parametrize("operator", list(Operator), ids=lambda op: op.value)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_each_operator_agrees_with_the_reference(operator: Operator, data: st.DataObject) -> None:
    condition = data.draw(conditions(operators=[operator]))
    context = data.draw(flag_contexts())
    expected = reference_matches(condition, context)
    assert matches(condition, context.user_id, context.role, context.attributes) is expected


@settings(max_examples=400)
@given(conditions(), flag_contexts())
def test_negation_is_the_complement_wherever_the_condition_applies(
    condition: Condition, context: FlagContext
) -> None:
    """A condition and its negation never both match; neither matches only when the
    attribute is missing or of another kind than the operator compares."""
    flipped = attrs.evolve(condition, negate=not condition.negate)
    plain = matches(condition, context.user_id, context.role, context.attributes)
    negated = matches(flipped, context.user_id, context.role, context.attributes)
    assert not (plain and negated)
    if condition.attribute == "user_id":
        actual: object = context.user_id
    elif condition.attribute == "role":
        actual = context.role
    else:
        actual = context.attributes.get(condition.attribute)
    name = condition.operator.value
    if name in ("equals", "in"):
        # (an unhashable value is in no list; equals compares anything)
        applies = actual is not None and (name == "equals" or not isinstance(actual, list | dict))
    elif name in ("lt", "lte", "gt", "gte"):
        applies = _number(actual)
    elif name.startswith("semver_"):
        applies = isinstance(actual, str) and reference_semver(actual) is not None
    else:
        applies = isinstance(actual, str)
    assert (plain or negated) is applies


_VERSIONISH = r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(-[0-9A-Za-z.-]{1,10})?(\+[0-9a-z.]{1,5})?"


@given(st.from_regex(_VERSIONISH, fullmatch=True) | st.text(max_size=12))
def test_semver_parsing_agrees_with_the_reference(text: str) -> None:
    from buttress.flags._targeting import semver_key

    ours, theirs = semver_key(text), reference_semver(text)
    assert (ours is None) is (theirs is None), text


_VERSION_POOL = [
    "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
    "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.0+build.5", "1.2.0", "1.10.0", "2.0.0",
]  # fmt: skip


def test_semver_precedence_is_semver_orgs_example_order() -> None:
    # The precedence example of semver.org section 11, in ascending order.
    ordered = [v for v in _VERSION_POOL if "+" not in v]
    for lower, higher in itertools.pairwise(ordered):
        assert matches(Condition("v", "semver_lt", higher), None, None, {"v": lower})
        assert not matches(Condition("v", "semver_lt", lower), None, None, {"v": higher})
    # Build metadata does not take part in precedence.
    assert matches(Condition("v", "semver_eq", "1.0.0"), None, None, {"v": "1.0.0+build.5"})


@given(st.sampled_from(_VERSION_POOL), st.sampled_from(_VERSION_POOL))
def test_semver_order_matches_the_semver_package_when_installed(a: str, b: str) -> None:
    semver = pytest.importorskip("semver")
    expected = semver.Version.parse(a).compare(b)
    assert matches(Condition("v", "semver_lt", b), None, None, {"v": a}) is (expected < 0)
    assert matches(Condition("v", "semver_eq", b), None, None, {"v": a}) is (expected == 0)


def test_missing_attribute_never_matches_negated_or_not() -> None:
    for negate in (False, True):
        for operator, value in (
            ("equals", "x"),
            ("gt", 1),
            ("semver_gt", "1.0.0"),
            ("matches", "."),
        ):
            condition = Condition("plan", operator, value, negate=negate)
            assert not matches(condition, "u", "r", {})
            assert not matches(condition, "u", "r", {"plan": None})


def test_an_operator_that_does_not_apply_never_matches_negated_or_not() -> None:
    for negate in (False, True):
        assert not matches(Condition("age", "gt", 10, negate=negate), None, None, {"age": "11"})
        assert not matches(Condition("age", "gt", 10, negate=negate), None, None, {"age": True})
        assert not matches(
            Condition("v", "semver_gt", "1.0.0", negate=negate), None, None, {"v": "x"}
        )
        assert not matches(Condition("e", "ends_with", "x", negate=negate), None, None, {"e": 5})


def test_negation_flips_a_comparison_that_applies() -> None:
    plan_is_free = Condition("plan", "equals", "free", negate=True)
    assert matches(plan_is_free, None, None, {"plan": "pro"})
    assert not matches(plan_is_free, None, None, {"plan": "free"})
    assert matches(
        Condition("country", "in", ["FR", "DE"], negate=True), None, None, {"country": "US"}
    )


def test_equals_and_in_keep_bools_apart_from_numbers() -> None:
    assert not matches(Condition("x", "equals", 1), None, None, {"x": True})
    assert not matches(Condition("x", "equals", True), None, None, {"x": 1})
    assert matches(Condition("x", "equals", 1), None, None, {"x": 1.0})
    assert not matches(Condition("x", "in", [1, 0]), None, None, {"x": False})
    assert matches(Condition("x", "in", [False]), None, None, {"x": False})
    assert not matches(Condition("x", "in", ["a"]), None, None, {"x": ["a"]})  # unhashable


def test_user_id_and_role_name_the_context_fields() -> None:
    assert matches(Condition("user_id", "starts_with", "emp-"), "emp-7", None, {})
    assert matches(Condition("role", "in", ["admin"]), None, "admin", {"role": "viewer"})


@pytest.mark.parametrize(
    ("build", "field", "says"),
    [
        (lambda: Condition("plan", "like", "x"), "operator", "must be one of equals, in"),
        (lambda: Condition("name", "matches", "(unclosed"), "value", "not a valid regular"),
        (lambda: Condition("v", "semver_gte", "1.2"), "value", "semantic version"),
        (lambda: Condition("v", "semver_gte", "01.2.3"), "value", "semantic version"),
        (lambda: Condition("age", "gt", "10"), "value", "finite number"),
        (lambda: Condition("age", "gt", True), "value", "finite number"),
        (lambda: Condition("age", "lt", float("nan")), "value", "finite number"),
        (lambda: Condition("c", "in", "FR"), "value", "list"),
        (lambda: Condition("c", "in", []), "value", "at least one"),
        (lambda: Condition("c", "in", [["nested"]]), "value", "str, number or bool"),  # type: ignore[list-item]  # bad on purpose
        (lambda: Condition("c", "equals", None), "value", "str, number or bool"),  # type: ignore[arg-type]  # bad on purpose
        (lambda: Condition("c", "starts_with", 5), "value", "needs a str"),
        (lambda: Condition("", "equals", "x"), "attribute", "non-empty"),
        (lambda: Rule([], variant="a", split={"a": 100}), "split", "not both"),
        (lambda: Rule([], split={"a": 60, "b": 30}), "split", "add up to 100"),
        (lambda: Rule([], split={"a": 120, "b": -20}), "split['a']", "between 0 and 100"),
        (lambda: Rule(["not a condition"]), "when[0].condition", "must be an object"),  # type: ignore[list-item]  # bad on purpose
    ],
)
def test_bad_targeting_is_one_validation_error_naming_the_field(
    build: Any, field: str, says: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)) as info:
        build()
    assert info.value.field == field


@pytest.mark.parametrize(
    ("build", "field", "says"),
    [
        (lambda: Rule("plan"), "when", "must be a list of Condition"),  # type: ignore[arg-type]  # bad on purpose
        (lambda: Rule({"attribute": "plan"}), "when", "list of Condition"),  # type: ignore[dict-item]  # bad on purpose
        (lambda: Flag("f", "F", rules=Rule([])), "rules", "must be a list of Rule"),  # type: ignore[arg-type]  # bad on purpose
        (lambda: Flag("f", "F", rules=[Rule([]), {"when": "x"}]), "rules[1].when", "list of"),
        (lambda: Rule([], variant=""), "variant", "non-empty str naming a variant"),
        (lambda: Flag("f", "F", default_variant=""), "default_variant", "naming a variant"),
    ],
)
def test_conditions_and_rules_are_read_alike(build: Any, field: str, says: str) -> None:
    with pytest.raises(ValidationError, match=says) as info:
        build()
    assert info.value.field == field


def test_rules_and_conditions_mix_values_and_mappings_in_order() -> None:
    plan = Condition("plan", "equals", "pro")
    rule = Rule([plan, {"attribute": "age", "operator": "gt", "value": 18}], variant="a")
    assert rule.when == (plan, Condition("age", "gt", 18))
    flag = Flag("f", "F", variants={"a": 1}, rules=[rule, {"when": [], "variant": "a"}])
    assert flag.rules == (rule, Rule([], variant="a"))


def test_a_bad_rule_read_from_json_names_its_path() -> None:
    data = Flag("f", "F", variants={"a": 1}, default_variant="a").to_dict()
    data["rules"] = [
        {"when": [{"attribute": "v", "operator": "semver_gt", "value": "1.0.0"}], "variant": "a"},
        {"when": [{"attribute": "v", "operator": "semver_gt", "value": "v1"}], "variant": "a"},
    ]
    with pytest.raises(ValidationError) as info:
        Flag.from_dict(data)
    assert info.value.field == "rules[1].when[0].value"
    assert "condition on 'v'" in str(info.value)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"variants": {"a": 1}, "default_variant": "b"}, "default_variant"),
        ({"default_variant": "maybe"}, "default_variant"),
        ({"variants": {"a": 1}, "users": ["u"]}, "users"),
        ({"variants": {"a": 1}, "roles": ["r"]}, "roles"),
        ({"variants": {"a": 1}, "percentage": 10}, "percentage"),
        ({"percentage": 10, "split": {"on": 50, "off": 50}}, "split"),
        ({"variants": {"a": None}}, "variants['a']"),
        ({"variants": {"a": float("nan")}}, "variants['a']"),
        ({"variants": {"a": {1: "x"}}}, "variants['a']"),
        ({"variants": {"a": 1}, "split": {"b": 100}}, "split"),
        ({"variants": {"a": 1}, "rules": [Rule([])]}, "rules[0].variant"),
        ({"variants": {"a": 1}, "rules": [Rule([], variant="z")]}, "rules[0].variant"),
        ({"metadata": {"k": [1]}}, "metadata['k']"),
    ],
)
def test_variants_are_checked_against_the_flag(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Flag("f", "F", enabled=True, **changes)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("field", "limit", "changes"),
    [
        ("name", 200, lambda text: {"name": text}),
        ("description", 2_000, lambda text: {"description": text}),
        ("metadata['owner']", 2_000, lambda text: {"metadata": {"owner": text}}),
    ],
)
def test_free_text_fields_are_limited(field: str, limit: int, changes: Any) -> None:
    Flag("f", **{"name": "F", **changes("x" * limit)})  # exactly at the limit: fine
    with pytest.raises(ValidationError) as info:
        Flag("f", **{"name": "F", **changes("x" * (limit + 1))})
    assert info.value.field == field
    assert info.value.rule == f"must be at most {limit:,} characters, not {limit + 1:,}"


def test_metadata_names_are_as_long_as_a_name_at_most() -> None:
    Flag("f", "F", metadata={"k" * 200: 1})
    with pytest.raises(ValidationError, match="names must be at most 200 characters") as info:
        Flag("f", "F", metadata={"k" * 201: 1})
    assert info.value.field == "metadata"


def test_a_stored_flag_over_a_text_limit_loads_and_cannot_be_written_back() -> None:
    data = {**Flag("f", "F", enabled=True).to_dict(), "name": "n" * 100_000}
    with pytest.raises(ValidationError, match="name: must be at most 200 characters"):
        Flag.from_dict(data)
    flag = Flag.from_dict(data, stored=True)  # written by an earlier release
    assert flag.problems == (("name", "must be at most 200 characters, not 100,000"),)
    assert flag.name == "n" * 100_000
    assert flag.enabled
    with pytest.raises(ValidationError, match="name: must be at most 200"):
        attrs.evolve(flag, enabled=False)
    assert attrs.evolve(flag, name="Short").problems == ()


def test_unknown_keys_in_a_stored_flag_are_refused() -> None:
    data = {**Flag("f", "F").to_dict(), "varaints": {"a": 1}}
    with pytest.raises(ValidationError, match="varaints"):
        Flag.from_dict(data)


def test_a_flag_stored_before_targeting_existed_loads_unchanged() -> None:
    old = {
        "key": "checkout", "name": "Checkout", "description": None, "enabled": True,
        "users": ["u1"], "roles": [], "percentage": 25.0, "enable_at": None, "disable_at": None,
    }  # fmt: skip
    flag = Flag.from_dict(old)
    assert flag == Flag("checkout", "Checkout", enabled=True, users={"u1"}, percentage=25)
    assert flag.to_dict() == old  # and it writes back exactly as it was read
    assert (flag.rules, dict(flag.variants), flag.default_variant, flag.split) == ((), {}, None, ())


@given(variant_flags())
def test_every_flag_round_trips_through_stored_json(flag: Flag) -> None:
    text = json.dumps(flag.to_dict(), sort_keys=True)  # as the SQL stores write it
    assert Flag.from_dict(json.loads(text)) == flag


def test_variant_values_are_private_copies() -> None:
    tags: list[JSONValue] = ["a"]
    value: dict[str, JSONValue] = {"title": "x", "tags": tags}
    flag = Flag("f", "F", enabled=True, variants={"v": value}, default_variant="v")
    tags.append("b")
    assert flag.variants["v"] == {"title": "x", "tags": ["a"]}
    assert flag.to_dict()["variants"]["v"] is not flag.variants["v"]


# -- evaluation order with rules and variants ----------------------------------------------


def test_rules_come_after_user_and_role_targets_and_before_the_rollout() -> None:
    flag = Flag(
        "f", "F", enabled=True, users={"vip"}, roles={"staff"}, percentage=0.01,
        rules=[Rule([Condition("country", "equals", "FR")])],
    )  # fmt: skip
    fr = {"country": "FR"}
    assert evaluate(flag, FlagContext("vip", attributes=fr), NOW).reason is Reason.USER_TARGET
    assert evaluate(flag, FlagContext("x", "staff", fr), NOW).reason is Reason.ROLE_TARGET
    matched = evaluate(flag, FlagContext("x", attributes=fr), NOW)
    assert (matched.enabled, matched.reason, matched.variant, matched.value) == (
        True, Reason.RULE_MATCH, "on", True,
    )  # fmt: skip
    assert evaluate(flag, FlagContext("x", attributes={"country": "DE"}), NOW).reason is (
        Reason.PERCENTAGE
    )


def test_the_first_matching_rule_decides_and_all_its_conditions_must_hold() -> None:
    flag = Flag(
        "banner", "Banner", enabled=True,
        variants={"internal": "INTERNAL", "fr": "Bonjour", "base": "Hello"},
        default_variant="base",
        rules=[
            Rule([Condition("email", "ends_with", "@acme.com"), Condition("age", "gt", 10)],
                 variant="internal"),
            Rule([Condition("country", "equals", "FR")], variant="fr"),
        ],
    )  # fmt: skip

    def served(**attributes: object) -> object:
        return evaluate(flag, FlagContext(attributes=attributes), NOW).value

    assert served(email="a@acme.com", age=11, country="FR") == "INTERNAL"
    assert served(email="a@acme.com", age=9, country="FR") == "Bonjour"
    assert served(email="a@acme.com", country="FR") == "Bonjour"  # age missing: no match
    assert served(country="DE") == "Hello"


def test_is_enabled_is_on_when_the_served_value_is_not_false() -> None:
    zero = Flag(
        "z", "Z", enabled=True, variants={"zero": False, "one": True}, default_variant="zero"
    )
    assert not evaluate(zero, None, NOW).enabled
    text = Flag("t", "T", enabled=True, variants={"empty": "", "x": "x"}, default_variant="empty")
    assert evaluate(text, None, NOW).enabled  # a str flag that serves something is on
    nothing = Flag("n", "N", enabled=True, variants={"a": 1})  # no default variant
    result = evaluate(nothing, None, NOW)
    assert (result.enabled, result.reason, result.variant, result.value) == (
        False, Reason.DEFAULT, None, None,
    )  # fmt: skip
    off_by_default = Flag("o", "O", enabled=True, default_variant="off",
                          rules=[Rule([Condition("plan", "equals", "pro")])])  # fmt: skip
    assert not evaluate(off_by_default, FlagContext(attributes={"plan": "free"}), NOW).enabled
    assert evaluate(off_by_default, FlagContext(attributes={"plan": "pro"}), NOW).enabled


def test_a_flag_with_nothing_to_evaluate_is_static() -> None:
    assert Flag("f", "F", variants={"a": 1, "b": 2}, default_variant="a").static
    assert Flag("f", "F").static
    assert Flag("f", "F").plain
    assert not Flag("f", "F", default_variant="off").plain
    assert not Flag("f", "F", rules=[Rule([])]).static
    assert not Flag("f", "F", split={"on": 50, "off": 50}).static


# -- splits: stable, deterministic, uniform ------------------------------------------------


def _variant(flag: Flag, user: str) -> str | None:
    return evaluate(flag, FlagContext(user), NOW).variant


@settings(max_examples=60, deadline=None)
@given(flag_keys(), splits(("a", "b", "c")), st.floats(0, 1))
def test_widening_the_first_variant_never_moves_its_users(
    key: str, split: tuple[tuple[str, float], ...], share: float
) -> None:
    """Moving weight from later variants to the first only moves users into it."""
    (first, w1), *rest = split
    grow = round(share * sum(w for _, w in rest), 2)
    taken, widened = grow, []
    for name, weight in rest:
        cut = min(weight, taken)
        taken = round(taken - cut, 2)
        widened.append((name, round(weight - cut, 2)))
    total = round(w1 + grow, 2)
    widened_split = ((first, total), *((n, w) for n, w in widened))
    assume(abs(sum(w for _, w in widened_split) - 100) < 1e-9)
    variants = {"a": 1, "b": 2, "c": 3}
    before = Flag(key, "F", enabled=True, variants=variants, split=split)
    after = Flag(key, "F", enabled=True, variants=variants, split=widened_split)
    for user in USERS[:300]:
        if _variant(before, user) == first:
            assert _variant(after, user) == first


@settings(max_examples=60, deadline=None)
@given(flag_keys(), splits(("a", "b", "c", "d")), st.integers(0, 2), st.floats(0, 1))
def test_moving_weight_between_neighbours_moves_only_their_users(
    key: str, split: tuple[tuple[str, float], ...], index: int, share: float
) -> None:
    """Weight moved between variants i and i+1 moves users only between those two."""
    names = [n for n, _ in split]
    weights = [w for _, w in split]
    moved = round(weights[index + 1] * share, 2)
    weights[index], weights[index + 1] = (
        round(weights[index] + moved, 2),
        round(weights[index + 1] - moved, 2),
    )
    assume(abs(sum(weights) - 100) < 1e-9)
    variants = {n: n for n in names}
    before = Flag(key, "F", enabled=True, variants=variants, split=split)
    after = Flag(
        key, "F", enabled=True, variants=variants, split=tuple(zip(names, weights, strict=True))
    )
    pair = {names[index], names[index + 1]}
    for user in USERS[:300]:
        old, new = _variant(before, user), _variant(after, user)
        if old != new:
            assert {old, new} <= pair
            assert new == names[index]  # only towards the variant that grew


@settings(max_examples=30, deadline=None)
@given(flag_keys(), splits(("a", "b", "c")))
def test_a_split_is_deterministic_and_follows_the_bucket(
    key: str, split: tuple[tuple[str, float], ...]
) -> None:
    flag = Flag(key, "F", enabled=True, variants={"a": 1, "b": 2, "c": 3}, split=split)
    bounds, names = flag.split_bounds, [n for n, _ in split]
    for user in USERS[:200]:
        result = evaluate(flag, FlagContext(user), NOW)
        assert result == evaluate(flag, FlagContext(user), NOW)
        assert result.reason is Reason.SPLIT
        assert result.bucket == bucket(key, user)
        index = next(i for i, bound in enumerate(bounds) if result.bucket < bound)
        assert result.variant == names[index]


@settings(max_examples=8, deadline=None)
@given(flag_keys(), st.sampled_from([(10, 30, 60), (33.33, 33.33, 33.34), (50, 0, 50)]))
def test_splits_are_uniform_over_20000_users(key: str, weights: tuple[float, ...]) -> None:
    split = tuple(zip("abc", weights, strict=True))
    flag = Flag(key, "F", enabled=True, variants={"a": 1, "b": 2, "c": 3}, split=split)
    seen = Counter(_variant(flag, user) for user in USERS)
    for name, weight in split:
        assert abs(100 * seen[name] / len(USERS) - weight) < 1.5, (name, seen)


@given(flag_keys(), st.integers(1, 10_000))
def test_a_two_way_split_is_exactly_the_percentage_rollout(key: str, hundredths: int) -> None:
    # (percentage 0 is "no rollout rule", so it starts at one hundredth)
    p = hundredths / 100
    rollout = Flag(key, "F", enabled=True, percentage=p)
    split = Flag(key, "F", enabled=True, split={"on": p, "off": round(100 - p, 2)})
    for user in USERS[:200]:
        assert (
            evaluate(rollout, FlagContext(user), NOW).enabled
            is evaluate(split, FlagContext(user), NOW).enabled
        )


def test_anonymous_callers_get_the_default_variant_under_a_split() -> None:
    half = Rule([Condition("plan", "equals", "pro")], split={"a": 50, "b": 50})
    flag = Flag("f", "F", enabled=True, variants={"a": 1, "b": 2}, default_variant="b",
                split={"a": 100, "b": 0}, rules=[half])  # fmt: skip
    anonymous = evaluate(flag, FlagContext(attributes={"plan": "pro"}), NOW)
    assert (anonymous.variant, anonymous.reason) == ("b", Reason.DEFAULT)
    user = evaluate(flag, FlagContext("u1", attributes={"plan": "pro"}), NOW)
    assert user.reason is Reason.RULE_MATCH
    assert user.bucket == bucket("f", "u1")


@settings(max_examples=300)
@given(variant_flags(around=NOW), flag_contexts(), st.integers(-40, 40))
def test_evaluation_never_raises_and_serves_a_declared_variant(
    flag: Flag, context: FlagContext, days: int
) -> None:
    result = evaluate(flag, context, NOW + timedelta(days=days))
    if result.variant is not None:
        assert result.value == flag.variants[result.variant]
        assert result.enabled is (result.value is not False)
    else:
        assert not result.enabled
    assert result == evaluate(flag, context, NOW + timedelta(days=days))


def test_pooled_attributes_cover_every_operator_kind() -> None:
    # The strategies must reach both outcomes, or the properties above prove little.
    kinds = {type(v) for values in ATTRIBUTES.values() for v in values}
    assert {str, int, float, bool} <= kinds
    assert {op.value for op in Operator} >= {"equals", "in", "semver_gt", "matches"}
