"""``buttress monitor``: anomaly rules over the recorded health history, from a shell.

Rules come from ``--rule KIND:METRIC[:ARGS]`` options and ``--rules FILE``
(TOML); there are no default rules. ``register`` wires the command into the
``buttress`` parser. Exit codes: the alert level (0 healthy, 1 warning,
2 critical), and 2 for bad input or an unusable backend.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from datetime import timedelta

from buttress.cli._common import parse_time
from buttress.errors import ButtressError, ValidationError
from buttress.monitoring._core import DropRule, FlatRule, Rule, SpikeRule, alert_level
from buttress.monitoring._service import HealthHistory, HealthRecord, check_metric_name
from buttress.monitoring._values import AlertLevel, Anomaly

__all__ = ["load_rules", "monitor", "parse_duration", "parse_rule", "register", "rule_to_dict"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(?P<amount>\d+(?:\.\d+)?)(?P<unit>[smhd])")
_NUMBER = re.compile(r"\d+(?:\.\d+)?%?|\.\d+%?")
_RULE_SPEC = "KIND:METRIC[:ARGS] with KIND drop, spike or flat"


def parse_duration(field: str, text: str) -> timedelta:
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
    metric, so ``spike:latency:db:1.0`` watches ``latency:db``.
    """
    field = f"--rule {spec}"
    kind, _, rest = spec.partition(":")
    parts = rest.split(":") if rest else []
    arguments: list[str] = []
    while len(parts) > 1 and (_NUMBER.fullmatch(parts[-1]) or _DURATION.fullmatch(parts[-1])):
        arguments.insert(0, parts.pop())
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


def _anomaly_to_dict(anomaly: Anomaly) -> dict[str, object]:
    return {
        "metric": anomaly.metric,
        "rule": anomaly.rule,
        "level": anomaly.level.name.lower(),
        "message": anomaly.message,
        "observed": anomaly.observed,
        "baseline": anomaly.baseline,
    }




def _rules(args: argparse.Namespace) -> list[Rule]:
    rules = [parse_rule(spec) for spec in args.rule or ()]
    if args.rules is not None:
        rules += load_rules(args.rules)
    return rules


_MARKS = {AlertLevel.HEALTHY: "ok  ", AlertLevel.WARNING: "WARN", AlertLevel.CRITICAL: "CRIT"}


def render_text(
    level: AlertLevel,
    rules: Sequence[Rule],
    anomalies: Sequence[Anomaly],
    runs: int,
    latest: HealthRecord | None,
) -> str:
    """The human report: the verdict, what was looked at, one line per anomaly."""
    last = (
        f"latest {latest.status.value} at {latest.recorded_at.isoformat(timespec='seconds')}"
        if latest is not None
        else "nothing recorded yet"
    )
    if rules:
        scope = f"{len(rules)} rule{'s' * (len(rules) != 1)} over {runs} recorded runs"
    else:
        scope = f"no rules given (add --rule drop:METRIC or --rules FILE); {runs} recorded runs"
    lines = [f"monitor: {level.name}  {scope}, {last}"]
    width = max((len(a.rule) for a in anomalies), default=0)
    for anomaly in anomalies:
        lines.append(f"  [{_MARKS[anomaly.level]}] {anomaly.rule.ljust(width)}  {anomaly.message}")
    if rules and not anomalies:
        lines.append("  no anomalies")
    return "\n".join(lines)


async def _monitor(args: argparse.Namespace, rules: list[Rule]) -> int:
    from buttress._connect import connect
    from buttress.cli import default_dsn

    at = parse_time("--at", args.at)
    async with connect(getattr(args, "dsn", None) or default_dsn()) as backend:
        history = HealthHistory(backend)
        anomalies = await history.check(rules, now=at)
        runs = await history.count()
        recent = await history.recent(1)
    latest = recent[0] if recent else None
    level = alert_level(anomalies)
    if args.json:
        payload = {
            "level": level.name.lower(),
            "exit_code": int(level),
            "at": at.isoformat() if at is not None else None,
            "runs": runs,
            "latest": latest.to_dict() if latest is not None else None,
            "rules": [rule_to_dict(rule) for rule in rules],
            "anomalies": [_anomaly_to_dict(a) for a in anomalies],
        }
        print(json.dumps(payload, indent=2))
    else:
        print(render_text(level, rules, anomalies, runs, latest))
    return int(level)


def monitor(args: argparse.Namespace) -> int:
    """Run the given rules over the recorded history; exit with the alert level."""
    try:
        return asyncio.run(_monitor(args, _rules(args)))
    except ButtressError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc), "type": type(exc).__name__}))
        else:
            print(f"buttress monitor: {exc}", file=sys.stderr)
        return 2


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add ``monitor``; ``common`` carries ``--dsn`` and ``--json``."""
    description = (
        "Run anomaly rules over the recorded health history and exit with the alert "
        "level: 0 healthy, 1 warning, 2 critical. There are no default rules."
    )
    parser = subparsers.add_parser(
        "monitor",
        parents=[common],
        help="anomaly rules over the recorded health history",
        description=description,
    )
    parser.set_defaults(handler=monitor)
    parser.add_argument(
        "--rule",
        "-r",
        action="append",
        metavar="SPEC",
        help="drop:METRIC[:WARNING[:CRITICAL]], spike:METRIC[:WARNING[:CRITICAL]] or "
        "flat:METRIC[:PERIOD]; repeatable (e.g. drop:signups:50%%, flat:signups:24h)",
    )
    parser.add_argument("--rules", metavar="FILE", help="a TOML file of [[rule]] tables")
    parser.add_argument(
        "--at", metavar="TIME", help="judge the history as of TIME (ISO 8601; default now)"
    )
