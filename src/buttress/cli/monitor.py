"""``buttress monitor``: anomaly rules over the recorded health history, from a shell.

Rules come from ``--rule KIND:METRIC[:ARGS]`` options and ``--rules FILE``
(TOML), read by ``buttress.monitoring.parse_rule``/``load_rules``; there are no
default rules. It only looks. Exit codes: the alert level (0 healthy,
1 warning, 2 critical), and 2 for bad input or an unusable backend.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from buttress.backends import Backend
from buttress.cli._common import Reply, Subparsers, add_command, parse_time, run
from buttress.monitoring import (
    AlertLevel,
    Anomaly,
    HealthHistory,
    HealthRecord,
    Rule,
    alert_level,
    load_rules,
    parse_rule,
    rule_to_dict,
)

__all__ = ["register", "render_text"]

_MARKS = {AlertLevel.HEALTHY: "ok  ", AlertLevel.WARNING: "WARN", AlertLevel.CRITICAL: "CRIT"}


def _rules(args: argparse.Namespace) -> list[Rule]:
    rules = [parse_rule(spec) for spec in args.rule or ()]
    if args.rules is not None:
        rules += load_rules(args.rules)
    return rules


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


def monitor(args: argparse.Namespace) -> int:
    """Run the given rules over the recorded history; exit with the alert level."""

    async def body(backend: Backend) -> Reply:
        rules = _rules(args)
        at = parse_time("--at", args.at)
        history = HealthHistory(backend)
        anomalies = await history.check(rules, now=at)
        runs = await history.count()
        recent = await history.recent(1)
        latest = recent[0] if recent else None
        level = alert_level(anomalies)
        payload = {
            "level": level.name.lower(),
            "exit_code": int(level),
            "at": at.isoformat() if at is not None else None,
            "runs": runs,
            "latest": latest.to_dict() if latest is not None else None,
            "rules": [rule_to_dict(rule) for rule in rules],
            "anomalies": [a.to_dict() for a in anomalies],
        }
        return Reply(payload, render_text(level, rules, anomalies, runs, latest), int(level))

    return run(args, body)


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``monitor``; ``common`` carries ``--dsn`` and ``--json``."""
    description = (
        "Run anomaly rules over the recorded health history and exit with the alert "
        "level: 0 healthy, 1 warning, 2 critical. There are no default rules."
    )
    help = "anomaly rules over the recorded health history"
    parser = add_command(subparsers, common, "monitor", monitor, help, description=description)
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
