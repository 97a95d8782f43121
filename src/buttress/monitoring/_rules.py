"""Anomaly rules from text: ``drop:signups:50%`` specs, ``[[rule]]`` TOML files, durations.

What an operator writes (``buttress monitor --rule``, ``--rules FILE``, ``buttress
doctor --rules``) becomes the ``Rule`` values of ``_core``; an application
serving its own checks loads the same files. Bad input is a ``ValidationError``
naming the spec or the file, the table and the key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta

from buttress._exceptions import ValidationError
from buttress.monitoring._core import DropRule, FlatRule, Rule, SpikeRule
from buttress.monitoring._service import check_metric_name
from buttress.monitoring._values import AlertLevel

__all__ = ["load_rules", "parse_duration", "parse_rule", "rule_to_dict"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(?P<amount>\d+(?:\.\d+)?)(?P<unit>[smhd])")
_NUMBER = re.compile(r"\d+(?:\.\d+)?%?|\.\d+%?")
_RULE_SPEC = "KIND:METRIC[:ARGS] with KIND drop, spike or flat"
_ATTEMPTS = {
    "flat": re.compile(r"[+\-.].*|\d+(?:\.\d+)?[A-Za-z]+"),
    "threshold": re.compile(r"[+\-.].*|\d+(?:\.\d+)?(?:x|%.+)"),
}
"""Trailing parts that are a failed try at an argument (``-5``, ``1w``, ``30min``,
``2x``) rather than part of a metric's name (``5xx`` stays a name)."""


def parse_duration(field: str, text: object) -> timedelta:
    """``90s``, ``15m``, ``24h``, ``7d`` (a number and a unit) as a ``timedelta``."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValidationError(field, "must be a number with a unit s, m, h or d, like 24h")
    return timedelta(seconds=float(match["amount"]) * _UNITS[match["unit"]])


def _fraction(text: str) -> float:
    """``0.5`` or ``50%``."""
    if text.endswith("%"):
        return float(text[:-1]) / 100
    return float(text)


def parse_rule(spec: str) -> Rule:
    """A rule from its command-line form.

    ``drop:METRIC[:WARNING[:CRITICAL]]``, ``spike:METRIC[:WARNING[:CRITICAL]]``
    (fractions: ``0.5`` or ``50%``) and ``flat:METRIC[:PERIOD]`` (``24h``).
    Trailing parts that look like numbers are the arguments; the rest is the
    metric, so ``spike:latency:db:1.0`` watches ``latency:db``. A trailing part
    that is a failed try at an argument (``1w``, ``-5``, ``2x``) is refused,
    never taken into the metric's name.
    """
    field = f"--rule {spec}"
    kind, _, rest = spec.partition(":")
    parts = rest.split(":") if rest else []
    arguments: list[str] = []
    while len(parts) > 1 and (_NUMBER.fullmatch(parts[-1]) or _DURATION.fullmatch(parts[-1])):
        arguments.insert(0, parts.pop())
    attempt = _ATTEMPTS["flat" if kind == "flat" else "threshold"]
    if len(parts) > 1 and attempt.fullmatch(parts[-1]):
        wanted = "a PERIOD like 24h (units s, m, h, d)"
        if kind != "flat":
            wanted = "a threshold like 0.5 or 50% (above 0)"
        raise ValidationError(
            field,
            f"{parts[-1]!r} is not {wanted}; a metric named with such a part goes in a "
            "--rules file",
        )
    metric = check_metric_name(field, ":".join(parts), allow_latency=True)
    try:
        return _build(field, kind, metric, arguments)
    except ValidationError as exc:
        if exc.field.startswith(field):
            raise
        raise ValidationError(f"{field}: {exc.field}", exc.rule) from None


def _build(field: str, kind: str, metric: str, arguments: list[str]) -> Rule:
    if kind in ("drop", "spike"):
        if len(arguments) > 2:
            raise ValidationError(field, f"{kind} takes at most WARNING and CRITICAL")
        try:
            fractions = [_fraction(a) for a in arguments]
        except ValueError:
            raise ValidationError(field, "thresholds are fractions like 0.5 or 50%") from None
        kinds: dict[str, type[DropRule] | type[SpikeRule]] = {"drop": DropRule, "spike": SpikeRule}
        if not fractions:
            return kinds[kind](metric)
        critical = fractions[1] if len(fractions) > 1 else None
        return kinds[kind](metric, warning=fractions[0], critical=critical)
    if kind == "flat":
        if len(arguments) > 1:
            raise ValidationError(field, "flat takes at most a PERIOD, like 24h")
        if arguments:
            return FlatRule(metric, period=parse_duration(field, arguments[0]))
        return FlatRule(metric)
    raise ValidationError(field, f"must be {_RULE_SPEC}")


_KEYS = {
    "drop": {"kind", "metric", "warning", "critical", "window", "min_samples"},
    "spike": {"kind", "metric", "warning", "critical", "window", "min_samples"},
    "flat": {"kind", "metric", "period", "level"},
}


def _rule_from_table(field: str, table: object) -> Rule:
    if not isinstance(table, Mapping):
        raise ValidationError(field, "must be a table with kind and metric")
    kind = table.get("kind")
    if kind not in _KEYS:
        raise ValidationError(f"{field}.kind", "must be drop, spike or flat")
    unknown = sorted(set(table) - _KEYS[kind])
    if unknown:
        raise ValidationError(f"{field}.{unknown[0]}", f"is not an option of a {kind} rule")
    metric = check_metric_name(f"{field}.metric", table.get("metric"), allow_latency=True)
    try:
        if kind == "flat":
            level = str(table.get("level", "warning")).upper()
            if level not in ("WARNING", "CRITICAL"):
                raise ValidationError(f"{field}.level", "must be warning or critical")
            period = parse_duration(f"{field}.period", table.get("period", "24h"))
            return FlatRule(metric, period=period, level=AlertLevel[level])
        window = parse_duration(f"{field}.window", table.get("window", "24h"))
        options = {
            key: table[key] for key in ("warning", "critical", "min_samples") if key in table
        }
        if kind == "drop":
            return DropRule(metric, window=window, **options)
        return SpikeRule(metric, window=window, **options)
    except ValidationError as exc:
        if exc.field.startswith(field):
            raise
        raise ValidationError(f"{field}.{exc.field}", exc.rule) from None


def load_rules(path: str) -> list[Rule]:
    """The rules of a TOML file: one ``[[rule]]`` table per rule (see docs/monitoring.md)."""
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise ValidationError("--rules", f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError("--rules", f"{path} is not valid TOML: {exc}") from None
    unknown = sorted(set(document) - {"rule"})
    if unknown:
        raise ValidationError(f"{path}: {unknown[0]}", "unknown table; rules go in [[rule]]")
    tables = document.get("rule", [])
    if not isinstance(tables, list):
        raise ValidationError(f"{path}: rule", "must be an array of tables ([[rule]])")
    return [_rule_from_table(f"{path}: rule[{i}]", table) for i, table in enumerate(tables)]


def rule_to_dict(rule: Rule) -> dict[str, object]:
    """JSON-ready: the rule's kind, metric and options (periods in seconds)."""
    if isinstance(rule, FlatRule):
        return {
            "kind": "flat",
            "metric": rule.metric,
            "period_seconds": rule.period.total_seconds(),
            "level": rule.level.name.lower(),
        }
    return {
        "kind": "drop" if isinstance(rule, DropRule) else "spike",
        "metric": rule.metric,
        "warning": rule.warning,
        "critical": rule.critical,
        "window_seconds": rule.window.total_seconds(),
        "min_samples": rule.min_samples,
    }
