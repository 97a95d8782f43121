"""``buttress deploy record|rollback|fail|history|latest|metrics``: the deployment log from a shell.

Each sub-command is a plain ``(args) -> int`` function over ``DeploymentLog``
on ``--dsn``; ``register`` wires them into the ``buttress`` parser. Exit codes:
0 done, 1 nothing found (``latest``), 2 bad input or an unusable backend.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from buttress.backends import Backend
from buttress.cli._common import add_action, parse_time, print_json, run_with_backend
from buttress.deploy._service import DeploymentLog
from buttress.deploy._values import DeliveryMetrics, Deployment
from buttress.errors import ValidationError

__all__ = ["fail", "history", "latest", "metrics", "record", "register", "rollback"]

Command = Callable[[DeploymentLog, argparse.Namespace], Awaitable[int]]


def _run(args: argparse.Namespace, command: Command) -> int:
    async def body(backend: Backend) -> int:
        return await command(DeploymentLog(backend), args)

    return run_with_backend(args, "deploy", body)


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


def _show(args: argparse.Namespace, deployment: Deployment, verb: str) -> int:
    if args.json:
        print_json(deployment.to_dict())
    else:
        print(f"{verb} {_describe(deployment)}")
    return 0


async def _record(log: DeploymentLog, args: argparse.Namespace) -> int:
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
    return _show(args, deployment, "recorded")


async def _rollback(log: DeploymentLog, args: argparse.Namespace) -> int:
    rolled = await log.rollback(
        args.deployment_id, to_version=args.to, reason=args.reason, deployed_by=args.by
    )
    return _show(args, rolled, "rolled back")


async def _fail(log: DeploymentLog, args: argparse.Namespace) -> int:
    failed = await log.mark_failed(args.deployment_id, parse_time("detected_at", args.detected_at))
    return _show(args, failed, "marked failed")


async def _history(log: DeploymentLog, args: argparse.Namespace) -> int:
    deployments = await log.history(args.env, args.limit)
    if args.json:
        print_json([d.to_dict() for d in deployments])
    elif not deployments:
        print("no deployments recorded")
    else:
        for deployment in deployments:
            print(_describe(deployment))
    return 0


async def _latest(log: DeploymentLog, args: argparse.Namespace) -> int:
    deployment = await log.latest(args.env)
    if deployment is None:
        if args.json:
            print_json(None)
        else:
            print(f"no deployment recorded for {args.env}", file=sys.stderr)
        return 1
    return _show(args, deployment, "latest")


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


async def _metrics(log: DeploymentLog, args: argparse.Namespace) -> int:
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
    if args.json:
        print_json(result.to_dict())
    else:
        print(render_metrics(result))
    return 0


def record(args: argparse.Namespace) -> int:
    return _run(args, _record)


def rollback(args: argparse.Namespace) -> int:
    return _run(args, _rollback)


def fail(args: argparse.Namespace) -> int:
    return _run(args, _fail)


def history(args: argparse.Namespace) -> int:
    return _run(args, _history)


def latest(args: argparse.Namespace) -> int:
    return _run(args, _latest)


def metrics(args: argparse.Namespace) -> int:
    return _run(args, _metrics)


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add ``deploy`` and its sub-commands; ``common`` carries ``--dsn`` and ``--json``."""
    deploy = subparsers.add_parser("deploy", help="record deployments and rollbacks, see metrics")
    commands = deploy.add_subparsers(dest="deploy_command", metavar="ACTION", required=True)

    add = functools.partial(add_action, commands, common)

    p = add("record", record, "record a successful deployment and set app_version")
    p.add_argument("version")
    p.add_argument("--env", "-e", required=True, help="environment, e.g. production")
    p.add_argument("--by", help="who or what deployed it")
    p.add_argument("--changelog")
    p.add_argument("--migration-notes")
    p.add_argument("--commit-sha", help="the deployed commit")
    p.add_argument("--committed-at", help="commit time, ISO 8601 with timezone (lead time)")
    p.add_argument("--started-at", help="rollout start, ISO 8601 with timezone")
    p.add_argument("--finished-at", help="when it went live (default now)")

    p = add("rollback", rollback, "roll a deployment back and record the rollback")
    p.add_argument("deployment_id", type=int)
    p.add_argument("--to", required=True, help="the version rolled back to")
    p.add_argument("--reason", required=True)
    p.add_argument("--by", help="who rolled back")

    p = add("fail", fail, "mark a deployment failed (it stays until replaced)")
    p.add_argument("deployment_id", type=int)
    p.add_argument("--detected-at", help="when the failure was detected (default now)")

    p = add("history", history, "list deployments, newest first")
    p.add_argument("--env", "-e", help="only this environment")
    p.add_argument("--limit", type=int, default=50)

    p = add("latest", latest, "show the latest deployment of an environment (exit 1 if none)")
    p.add_argument("--env", "-e", required=True)

    p = add("metrics", metrics, "delivery (DORA) metrics of an environment")
    p.add_argument("--env", "-e", required=True)
    p.add_argument("--since", help="start, ISO 8601 with timezone (default 30 days before until)")
    p.add_argument("--until", help="end, exclusive (default now)")
    p.add_argument("--days", type=float, help="the period is the last DAYS days before until")
