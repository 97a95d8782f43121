"""``buttress deploy record|rollback|fail|history|latest|metrics``: the deployment log from a shell.

Each action is a body over ``DeploymentLog`` on ``--dsn``, run by
``_common.run``: ``history``, ``latest`` and ``metrics`` only look; ``record``,
``rollback`` and ``fail`` write, on a database ``buttress migrate`` has set up.
``--env`` and ``--environment`` are the same option. Exit codes: 0 done,
1 nothing found (``latest``), 2 bad input or an unusable backend.
"""

from __future__ import annotations

import argparse
import functools
from datetime import UTC, datetime, timedelta

from buttress.backends import Backend
from buttress.cli._common import (
    Access,
    Reply,
    Subparsers,
    action_group,
    component_handler,
    listing,
    not_found,
    parse_time,
)
from buttress.deploy import DeliveryMetrics, Deployment, DeploymentLog
from buttress.errors import ValidationError

__all__ = ["register", "render_metrics"]


def _log(backend: Backend, args: argparse.Namespace) -> DeploymentLog:
    return DeploymentLog(backend)


_handler = functools.partial(component_handler, _log)


def _describe(d: Deployment) -> str:
    when = d.deployed_at.strftime("%Y-%m-%d %H:%M:%S")
    notes = []
    if d.deployed_by:
        notes.append(f"by {d.deployed_by}")
    if d.is_rollback:
        notes.append(f"rollback of #{d.rollback_of}")
    if d.status == "rolled_back":
        notes.append(f"rolled back to {d.rollback_to}: {d.rollback_reason}")
    if d.commit_sha:
        notes.append(d.commit_sha[:12])
    return f"#{d.id:<5} {when}  {d.environment:<12} {d.version:<16} {d.status:<11} " + ", ".join(
        notes
    )


def _show(deployment: Deployment, verb: str) -> Reply:
    return Reply(deployment.to_dict(), f"{verb} {_describe(deployment)}")


async def _record(log: DeploymentLog, args: argparse.Namespace) -> Reply:
    deployment = await log.record(
        args.version,
        args.env,
        deployed_by=args.by,
        changelog=args.changelog,
        migration_notes=args.migration_notes,
        commit_sha=args.commit_sha,
        committed_at=parse_time("committed_at", args.committed_at),
        started_at=parse_time("started_at", args.started_at),
        finished_at=parse_time("finished_at", args.finished_at),
    )
    return _show(deployment, "recorded")


async def _rollback(log: DeploymentLog, args: argparse.Namespace) -> Reply:
    rolled = await log.rollback(
        args.deployment_id, to_version=args.to, reason=args.reason, deployed_by=args.by
    )
    return _show(rolled, "rolled back")


async def _fail(log: DeploymentLog, args: argparse.Namespace) -> Reply:
    failed = await log.mark_failed(args.deployment_id, parse_time("detected_at", args.detected_at))
    return _show(failed, "marked failed")


async def _history(log: DeploymentLog, args: argparse.Namespace) -> Reply:
    deployments = await log.history(args.env, args.limit)
    return listing(deployments, _describe, Deployment.to_dict, "no deployments recorded")


async def _latest(log: DeploymentLog, args: argparse.Namespace) -> Reply:
    deployment = await log.latest(args.env)
    if deployment is None:
        return not_found(f"no deployment recorded for {args.env}")
    return _show(deployment, "latest")


def _duration(value: timedelta | None) -> str:
    if value is None:
        return "unknown"
    seconds = int(value.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours:d}h{minutes:02d}m{seconds:02d}s"
    return f"{days}d {text}" if days else text


def render_metrics(m: DeliveryMetrics) -> str:
    """The delivery metrics as a short table for a terminal."""
    return "\n".join(
        [
            f"delivery metrics for {m.environment}, {m.since.isoformat()} to {m.until.isoformat()}",
            f"  deployments:          {m.deployments}",
            f"  deployment frequency: {m.deployment_frequency:.3f} per day",
            f"  change failure rate:  {m.change_failure_rate:.1%} ({m.failures} failed)",
            f"  lead time (median):   {_duration(m.lead_time)}",
            f"  time to restore:      {_duration(m.time_to_restore)}",
        ]
    )


async def _metrics(log: DeploymentLog, args: argparse.Namespace) -> Reply:
    if args.days is not None and args.since is not None:
        raise ValidationError("--days", "give either --days or --since, not both")
    if args.days is not None and args.days <= 0:
        raise ValidationError("--days", "must be a positive number of days")
    until = parse_time("until", args.until)
    since = parse_time("since", args.since)
    if args.days is not None:
        end = until if until is not None else datetime.now(UTC)
        since = end - timedelta(days=args.days)
        until = end
    result = await log.metrics(args.env, since, until)
    return Reply(result.to_dict(), render_metrics(result))


def _environment(parser: argparse.ArgumentParser, help: str, *, required: bool) -> None:
    parser.add_argument("--env", "--environment", "-e", dest="env", required=required, help=help)


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``deploy`` and its actions; ``common`` carries ``--dsn`` and ``--json``."""
    add = action_group(
        subparsers, common, "deploy", "record deployments and rollbacks, see metrics"
    )
    looks, writes = Access.EXISTING, Access.SET_UP

    p = add(
        "record",
        _handler(_record, writes),
        "record a successful deployment and set app_version",
    )
    p.add_argument("version")
    _environment(p, "environment, e.g. production", required=True)
    p.add_argument("--by", help="who or what deployed it")
    p.add_argument("--changelog")
    p.add_argument("--migration-notes")
    p.add_argument("--commit-sha", help="the deployed commit")
    p.add_argument("--committed-at", help="commit time, ISO 8601 with timezone (lead time)")
    p.add_argument("--started-at", help="rollout start, ISO 8601 with timezone")
    p.add_argument("--finished-at", help="when it went live (default now)")

    p = add(
        "rollback",
        _handler(_rollback, writes),
        "roll a deployment back and record the rollback",
    )
    p.add_argument("deployment_id", type=int)
    p.add_argument("--to", required=True, help="the version rolled back to")
    p.add_argument("--reason", required=True)
    p.add_argument("--by", help="who rolled back")

    p = add("fail", _handler(_fail, writes), "mark a deployment failed (it stays until replaced)")
    p.add_argument("deployment_id", type=int)
    p.add_argument("--detected-at", help="when the failure was detected (default now)")

    p = add("history", _handler(_history, looks), "list deployments, newest first")
    _environment(p, "only this environment", required=False)
    p.add_argument("--limit", type=int, default=50)

    p = add(
        "latest",
        _handler(_latest, looks),
        "show the latest deployment of an environment (exit 1 if none)",
    )
    _environment(p, "the environment", required=True)

    p = add("metrics", _handler(_metrics, looks), "delivery (DORA) metrics of an environment")
    _environment(p, "the environment", required=True)
    p.add_argument("--since", help="start, ISO 8601 with timezone (default 30 days before until)")
    p.add_argument("--until", help="end, exclusive (default now)")
    p.add_argument("--days", type=float, help="the period is the last DAYS days before until")
