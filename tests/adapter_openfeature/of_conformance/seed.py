"""Translate an OpenFeature test flag set (JSON) into buttress flags and config values.

A boolean flag whose default variant is ``true`` becomes a ``Flag``; a typed
flag becomes a ``ConfigStore`` value (gated by a switched-off ``Flag`` when the
set marks it disabled). Whatever buttress's model cannot hold is refused with
the reason, and what it holds only in part (variant names, metadata) is noted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import attrs
import pytest

from buttress.config import JSONValue
from buttress.flags import Flag

# The suites are the project's shared conformance material (../shared beside the
# repository, as CI lays it out); they are read in place, never copied here.
FEATURES = Path(
    os.environ.get("BUTTRESS_CONFORMANCE_DIR")
    or Path(__file__).resolve().parents[3].parent / "shared" / "conformance" / "openfeature"
).resolve()


def feature(relative: str) -> str:
    """The path of one suite file; skips locally (fails under CI=true) when absent."""
    path = FEATURES / relative
    if not path.is_file():
        reason = (
            f"OpenFeature conformance file {relative} not found under {FEATURES}; "
            "put ../shared beside the repository or set BUTTRESS_CONFORMANCE_DIR"
        )
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason, allow_module_level=True)
    return str(path)

LOST_VARIANT = "variant"
LOST_METADATA = "metadata"


@attrs.frozen
class Translation:
    """The flag set as buttress holds it."""

    flags: tuple[Flag, ...]
    config: Mapping[str, JSONValue]
    refused: Mapping[str, str]
    """Flag key -> why buttress's model cannot express it (not seeded)."""
    lost: Mapping[str, frozenset[str]]
    """Flag key -> parts the seeded form drops (``LOST_VARIANT``, ``LOST_METADATA``)."""


def _refusal(key: str, spec: Mapping[str, object]) -> str | None:
    rule = spec.get("contextEvaluator") or spec.get("_rule")
    if rule is not None:
        return (
            f"{key!r} picks a variant with a rule over arbitrary context attributes ({rule}); "
            "buttress targets only user ids, roles and a percentage of user ids, and its "
            "typed values (ConfigStore) have no variants to pick from"
        )
    variants = spec.get("variants")
    default_variant = spec.get("defaultVariant")
    if not isinstance(variants, dict) or default_variant not in variants:
        return (
            f"{key!r} has no default variant; buttress stores exactly one value per key, "
            "so a key without a value cannot be seeded"
        )
    value = variants[default_variant]
    if value is False and not spec.get("disabled", False):
        return (
            f"{key!r} is switched on and serves false; in buttress a flag that answers false "
            "is switched off, which resolves to the caller's default with reason DISABLED "
            "(and an off flag never reports STATIC/TARGETING_MATCH)"
        )
    return None


def translate(flag_set: Mapping[str, object]) -> Translation:
    """Seedable flags and config values, plus refusals with reasons."""
    flags: list[Flag] = []
    config: dict[str, JSONValue] = {}
    refused: dict[str, str] = {}
    lost: dict[str, frozenset[str]] = {}
    for key, raw in flag_set.items():
        if key.startswith("_") or not isinstance(raw, dict):
            continue  # comments in the transcription
        reason = _refusal(key, raw)
        if reason is not None:
            refused[key] = reason
            continue
        variants: dict[str, JSONValue] = raw["variants"]
        default_variant: str = raw["defaultVariant"]
        value = variants[default_variant]
        disabled = bool(raw.get("disabled", False))
        dropped: set[str] = set()
        if raw.get("flagMetadata"):
            dropped.add(LOST_METADATA)
        if isinstance(value, bool):
            flags.append(Flag(key, key, enabled=not disabled))
            # The provider names boolean variants "on"/"off"; other names are lost.
            if default_variant != ("on" if value else "off"):
                dropped.add(LOST_VARIANT)
        else:
            config[key] = value
            dropped.add(LOST_VARIANT)
            if disabled:
                flags.append(Flag(key, key, enabled=False))
        if dropped:
            lost[key] = frozenset(dropped)
    return Translation(tuple(flags), config, refused, lost)


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
