"""``buttress errors``: the error counts persisted in ``buttress_error_events``, from a shell.

It reads the per-minute counts ``ErrorStats`` wrote to ``--dsn``, prints totals
by category, severity and component, and judges the recent error rate with
``ErrorRateRule``. It only looks. Exit codes: the alert level (0 healthy,
1 warning, 2 critical), and 2 for bad input or an unusable backend.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from buttress.backends import Backend, SqlBackend
from buttress.cli._common import Reply, Subparsers, add_command, parse_time, run
from buttress.errors import ValidationError
from buttress.monitoring import Anomaly, alert_level, parse_duration
from buttress.monitoring.errors import (
    ErrorRateRule,
    ErrorSummary,
    read_error_counts,
    summarize,
)

__all__ = ["register", "render"]


def _rule(args: argparse.Namespace) -> ErrorRateRule:
    return ErrorRateRule(
        per_minute=args.max_per_minute,
        critical=args.critical_per_minute,
        window=parse_duration("--rate-window", args.rate_window),
    )


def _top(totals: dict[str, int], limit: int) -> dict[str, int]:
    return dict(list(totals.items())[:limit])


def render(summary: ErrorSummary, anomalies: list[Anomaly], rate: float, top: int) -> str:
    """The text report: the verdict, the totals, and one line per anomaly."""
    level = alert_level(anomalies)
    minutes = (summary.until - summary.since).total_seconds() / 60
    lines = [
        f"{level.name.lower()}: {summary.total} errors in the last {minutes:g} min "
        f"({rate:g} a minute recently)",
    ]
    for title, totals in (
        ("by category", summary.by_category),
        ("by severity", summary.by_severity),
        ("by component", _top(summary.by_component, top)),
    ):
        if totals:
            lines.append(f"  {title}:")
            lines.extend(f"    {name:<24} {count}" for name, count in totals.items())
    lines.extend(f"  {a.level.name.lower()}: {a.message}" for a in anomalies)
    return "\n".join(lines)


def _anomaly(a: Anomaly) -> dict[str, object]:
    return {
        "metric": a.metric,
        "rule": a.rule,
        "level": a.level.name.lower(),
        "message": a.message,
        "observed": a.observed,
        "threshold": a.baseline,
    }


def errors(args: argparse.Namespace) -> int:
    """Run ``buttress errors``; return the exit code."""

    async def body(backend: Backend) -> Reply:
        if args.top < 1:
            raise ValidationError("--top", "must be an int >= 1")
        window = parse_duration("--since", args.since)
        rule = _rule(args)
        at = parse_time("--at", args.at)
        now = at.astimezone(UTC) if at is not None else datetime.now(UTC)
        if not isinstance(backend, SqlBackend):
            raise ValidationError(
                "--dsn", "error counts are persisted in sqlite or postgresql, not " + backend.kind
            )
        counts = await read_error_counts(backend, now - max(window, rule.window), now)
        summary = summarize(counts, now - window, now)
        found = [a for a in [rule.check(counts, now)] if a is not None]
        level = alert_level(found)
        rate = rule.rate(counts, now)
        report = {
            "level": level.name.lower(),
            "exit_code": int(level),
            "at": now.isoformat(),
            "rate_per_minute": rate,
            "summary": summary.to_dict(),
            "anomalies": [_anomaly(a) for a in found],
        }
        return Reply(report, render(summary, found, rate, args.top), int(level))

    return run(args, body)


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``errors``; ``common`` carries ``--dsn`` and ``--json``."""
    description = "error counts by category, severity and component, and the error-rate verdict"
    help = "show recorded error counts"
    parser = add_command(subparsers, common, "errors", errors, help, description=description)
    parser.add_argument("--since", default="1h", help="totals over this long (default 1h)")
    parser.add_argument(
        "--max-per-minute", type=float, default=10.0,
        help="warn above this many errors a minute (default 10)",
    )  # fmt: skip
    parser.add_argument(
        "--critical-per-minute", type=float, default=None,
        help="critical above this many errors a minute (default: no critical level)",
    )  # fmt: skip
    parser.add_argument(
        "--rate-window", default="1m", help="the rate is judged over this long (default 1m)"
    )
    parser.add_argument("--top", type=int, default=10, help="components to list (default 10)")
    parser.add_argument("--at", help="judge as of this ISO 8601 time (default now)")
