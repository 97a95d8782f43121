"""Translate an OpenFeature test flag set (JSON) into buttress flags.

Every flag becomes a ``Flag`` with the same variants, default variant, switch and
metadata; its targeting expression becomes ``Rule`` values (``RULES``, written
by hand for each expression the sets use). A flag whose rule is not in
``RULES`` is refused with the reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import attrs
import pytest

from buttress.flags import Condition, Flag, Rule
from conformance_location import ENVIRONMENT, FEATURES


def feature(relative: str) -> str:
    """The path of one suite file; skips locally (fails under CI=true) when absent."""
    path = FEATURES / relative
    if not path.is_file():
        reason = (
            f"OpenFeature conformance file {relative} not found under {FEATURES}; "
            f"put ../shared beside the repository or set {ENVIRONMENT}"
        )
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason, allow_module_level=True)
    return str(path)


@attrs.frozen
class Translation:
    """The flag set as buttress holds it."""

    flags: tuple[Flag, ...]
    refused: Mapping[str, str]
    """Flag key -> why buttress's model cannot express it (not seeded)."""


_EMAIL = Condition("email", "equals", "ballmer@macrosoft.com")

RULES: Mapping[str, tuple[Rule, ...]] = {
    # The sets write their rules as code (a JsonLogic-like expression, or prose under
    # "_rule"); each one the suites use is written here as buttress rules, by hand.
    "email == 'ballmer@macrosoft.com' ? 'zero' : ''": (Rule([_EMAIL], variant="zero"),),
    "!customer && email == 'ballmer@macrosoft.com' && age > 10 ? 'internal' : ''": (
        Rule(
            [Condition("customer", "equals", False), _EMAIL, Condition("age", "gt", 10)],
            variant="internal",
        ),
    ),
    # "exact equality of the whole attribute map": all four attributes equal. A context
    # with these four and more would match here too; no scenario sends one.
    'if context.attributes == {"fn": "Sulisław", "ln": "Świętopełk", "age": 29, '
    '"customer": false} (exact equality of the whole attribute map) then variant '
    "'internal' with reason TARGETING_MATCH, else default variant with reason DEFAULT": (
        Rule(
            [
                Condition("fn", "equals", "Sulisław"),
                Condition("ln", "equals", "Świętopełk"),
                Condition("age", "equals", 29),
                Condition("customer", "equals", False),
            ],
            variant="internal",
        ),
    ),
}
"""Each targeting expression of the flag sets, as ``Rule`` values."""


def translate(flag_set: Mapping[str, object]) -> Translation:
    """Every flag of the set as a buttress ``Flag`` with variants, plus refusals with reasons."""
    flags: list[Flag] = []
    refused: dict[str, str] = {}
    for key, raw in flag_set.items():
        if key.startswith("_") or not isinstance(raw, dict):
            continue  # comments in the transcription
        expression = raw.get("contextEvaluator") or raw.get("_rule")
        rules: tuple[Rule, ...] = ()
        if expression is not None:
            if expression not in RULES:
                refused[key] = f"{key!r} has a targeting rule not written as buttress rules yet"
                continue
            rules = RULES[expression]
        flags.append(
            Flag(
                key,
                key,
                enabled=not raw.get("disabled", False),
                variants=raw["variants"],
                default_variant=raw.get("defaultVariant"),
                rules=rules,
                metadata=raw.get("flagMetadata"),
            )
        )
    return Translation(tuple(flags), refused)


def load(name: str) -> Translation:
    """Translate the flag set ``name`` of the conformance material."""
    data: dict[str, object] = json.loads(Path(feature(name)).read_text(encoding="utf-8"))
    return translate(data)


PINNED_FLAGS = "python-sdk-in-memory-flags.json"
MAIN_FLAGS = "spec-main/test-flags.json"

FLAG_SET_FOR_FEATURE: Mapping[str, str] = {
    "spec-0cd553d-python-sdk-pinned/evaluation.feature": PINNED_FLAGS,
    "spec-0cd553d-python-sdk-pinned/hooks.feature": PINNED_FLAGS,
    "spec-0cd553d-python-sdk-pinned/metadata.feature": PINNED_FLAGS,
    # The deprecated suite's scenarios (context-aware) are the python-sdk's in-memory set.
    "spec-main/evaluation.feature": PINNED_FLAGS,
    "spec-main/evaluation_v2.feature": MAIN_FLAGS,
    "spec-main/hooks.feature": MAIN_FLAGS,
    "spec-main/metadata.feature": MAIN_FLAGS,
    "spec-main/contextMerging.feature": MAIN_FLAGS,
}
"""Which flag set a feature file's "Given a stable provider" means."""
