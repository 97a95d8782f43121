"""``buttress flags list|get|set|eval|history|delete``: feature flags from a shell.

Each action is a plain ``(args) -> int`` function over ``FeatureFlags`` on
``--dsn``; ``register`` wires them into the ``buttress`` parser. ``set``
creates or updates and prints ``rollout_warning`` when a change crosses
"percentage 0 means everyone". Exit codes: 0 done, 1 not found, 2 bad input
or an unusable backend.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import attrs

from buttress._checks import validate_key
from buttress.backends import Backend
from buttress.cli._common import add_action, os_user, parse_time, print_json, run_with_backend
from buttress.errors import ValidationError
from buttress.flags._core import evaluate, rollout_warning
from buttress.flags._service import FeatureFlags
from buttress.flags._values import Flag, FlagChange, FlagContext, FlagEvaluation, Reason

__all__ = ["delete", "eval_", "get", "history", "list_", "register", "set_"]

Command = Callable[[FeatureFlags, argparse.Namespace], Awaitable[int]]

_CLEAR = ("", "none")
"""``--enable-at none`` / ``--users ''`` clear the field."""


def _run(args: argparse.Namespace, command: Command) -> int:
    async def body(backend: Backend) -> int:
        # No polling and no subscription: one command, one read or write.
        flags = FeatureFlags(backend, refresh_interval=None)
        try:
            return await command(flags, args)
        finally:
            await flags.stop()

    return run_with_backend(args, "flags", body)


def _time(field: str, text: str | None) -> datetime | None:
    if text is not None and text.strip().lower() in _CLEAR:
        return None
    return parse_time(field, text)


def _names(text: str) -> frozenset[str]:
    return frozenset(name.strip() for name in text.split(",") if name.strip())


def _percentage(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValidationError("percentage", "must be a number between 0 and 100") from None


def _attributes(pairs: list[str] | None) -> dict[str, object]:
    attributes: dict[str, object] = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValidationError("--attr", "must be NAME=VALUE")
        attributes[name] = value
    return attributes


def _describe(flag: Flag) -> str:
    rules = []
    if flag.users:
        rules.append(f"users={','.join(sorted(flag.users))}")
    if flag.roles:
        rules.append(f"roles={','.join(sorted(flag.roles))}")
    if flag.percentage:
        rules.append(f"{flag.percentage:g}%")
    if flag.enable_at:
        rules.append(f"from {flag.enable_at.isoformat()}")
    if flag.disable_at:
        rules.append(f"until {flag.disable_at.isoformat()}")
    if flag.enabled and not rules:
        rules.append("everyone")
    state = "on " if flag.enabled else "off"
    line = f"{flag.key:<24} {state} {' '.join(rules)}"
    return line.rstrip() + (f"  # {flag.name}" if flag.name != flag.key else "")


def _changed_fields(change: FlagChange) -> str:
    if change.old is None or change.new is None:
        return ""
    old, new = change.old.to_dict(), change.new.to_dict()
    parts = [f"{name}: {old[name]!r} -> {new[name]!r}" for name in new if old[name] != new[name]]
    return "; ".join(parts)


def _change_dict(change: FlagChange) -> dict[str, object]:
    return {
        "key": change.key,
        "version": change.version,
        "action": change.action,
        "changed_at": change.changed_at.isoformat(),
        "changed_by": change.changed_by,
        "reason": change.reason,
        "old": None if change.old is None else change.old.to_dict(),
        "new": None if change.new is None else change.new.to_dict(),
    }


def _evaluation_dict(result: FlagEvaluation) -> dict[str, object]:
    return {
        "key": result.key,
        "enabled": result.enabled,
        "reason": result.reason.value,
        "bucket": result.bucket,
    }


async def _list(flags: FeatureFlags, args: argparse.Namespace) -> int:
    stored = await flags.list()
    if args.json:
        print_json([flag.to_dict() for flag in stored])
    elif not stored:
        print("no flags")
    else:
        for flag in stored:
            print(_describe(flag))
    return 0


async def _get(flags: FeatureFlags, args: argparse.Namespace) -> int:
    flag = await flags.get(args.key)
    if flag is None:
        if args.json:
            print_json(None)
        else:
            print(f"flag {args.key!r} does not exist", file=sys.stderr)
        return 1
    if args.json:
        print_json(flag.to_dict())
    else:
        print(_describe(flag))
        if flag.description:
            print(f"  {flag.description}")
    return 0


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if args.enabled is not None:
        changes["enabled"] = args.enabled
    if args.percentage is not None:
        changes["percentage"] = _percentage(args.percentage)
    if args.users is not None:
        changes["users"] = _names(args.users)
    if args.roles is not None:
        changes["roles"] = _names(args.roles)
    if args.enable_at is not None:
        changes["enable_at"] = _time("enable_at", args.enable_at)
    if args.disable_at is not None:
        changes["disable_at"] = _time("disable_at", args.disable_at)
    if args.name is not None:
        changes["name"] = args.name
    if args.description is not None:
        changes["description"] = args.description or None
    return changes


async def _set(flags: FeatureFlags, args: argparse.Namespace) -> int:
    validate_key("key", args.key)
    changes = _changes(args)
    old = await flags.get(args.key)
    if old is None:
        changes.setdefault("name", args.key)
        new = Flag(args.key, **changes)
    elif not changes:
        raise ValidationError(
            "flags set", "give at least one change (--enabled, --percentage, --users, ...)"
        )
    else:
        new = attrs.evolve(old, **changes)
    await flags.upsert(new, updated_by=args.updated_by, reason=args.reason)
    warning = rollout_warning(old, new)
    if warning is not None:
        print(f"warning: {warning}", file=sys.stderr)
    action = "created" if old is None else "updated"
    if args.json:
        print_json({"action": action, "flag": new.to_dict(), "warning": warning})
    else:
        print(f"{action} {_describe(new)}")
    return 0


async def _eval(flags: FeatureFlags, args: argparse.Namespace) -> int:
    validate_key("key", args.key)
    context = FlagContext(args.user, args.role, _attributes(args.attr))
    at = _time("at", args.at) or datetime.now(UTC)
    flag = await flags.get(args.key)
    if flag is None:
        result = FlagEvaluation(args.key, False, Reason.UNKNOWN_FLAG)
    else:
        result = evaluate(flag, context, at)
    if args.json:
        print_json(_evaluation_dict(result))
    else:
        state = "on" if result.enabled else "off"
        bucket = "" if result.bucket is None else f", bucket {result.bucket / 100:.2f}"
        print(f"{result.key}: {state} ({result.reason.value}{bucket})")
    return 1 if flag is None else 0


async def _history(flags: FeatureFlags, args: argparse.Namespace) -> int:
    changes = await flags.history(args.key, args.limit)
    if args.json:
        print_json([_change_dict(change) for change in changes])
    elif not changes:
        print(f"no changes recorded for {args.key!r}")
    else:
        for change in changes:
            when = change.changed_at.strftime("%Y-%m-%d %H:%M:%S")
            line = f"v{change.version:<4} {when}  {change.action:<6}"
            if change.changed_by:
                line += f" by {change.changed_by}"
            if change.reason:
                line += f": {change.reason}"
            fields = _changed_fields(change)
            print(f"{line}  [{fields}]" if fields else line)
    return 0


async def _delete(flags: FeatureFlags, args: argparse.Namespace) -> int:
    deleted = await flags.delete(args.key, updated_by=args.updated_by, reason=args.reason)
    if args.json:
        print_json({"key": args.key, "deleted": deleted})
    elif deleted:
        print(f"deleted {args.key}")
    else:
        print(f"flag {args.key!r} does not exist", file=sys.stderr)
    return 0 if deleted else 1


def list_(args: argparse.Namespace) -> int:
    return _run(args, _list)


def get(args: argparse.Namespace) -> int:
    return _run(args, _get)


def set_(args: argparse.Namespace) -> int:
    return _run(args, _set)


def eval_(args: argparse.Namespace) -> int:
    return _run(args, _eval)


def history(args: argparse.Namespace) -> int:
    return _run(args, _history)


def delete(args: argparse.Namespace) -> int:
    return _run(args, _delete)


def _audit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--updated-by", default=os_user(), help="who makes the change (default: the OS user)"
    )
    parser.add_argument("--reason", help="why, kept in the history")


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add ``flags`` and its actions; ``common`` carries ``--dsn`` and ``--json``."""
    flags = subparsers.add_parser("flags", help="list, change and evaluate feature flags")
    commands = flags.add_subparsers(dest="flags_command", metavar="ACTION", required=True)

    add = functools.partial(add_action, commands, common)

    add("list", list_, "list every flag")

    p = add("get", get, "show one flag (exit 1 if it does not exist)")
    p.add_argument("key")

    p = add("set", set_, "create a flag or change some of its fields")
    p.add_argument("key")
    switch = p.add_mutually_exclusive_group()
    switch.add_argument("--enabled", dest="enabled", action="store_true", default=None)
    switch.add_argument("--disabled", dest="enabled", action="store_false")
    p.add_argument("--percentage", metavar="P", help="rollout percentage 0-100 (0: no rule)")
    p.add_argument("--users", metavar="A,B", help="targeted user ids, comma-separated ('' clears)")
    p.add_argument("--roles", metavar="R,S", help="targeted roles, comma-separated ('' clears)")
    p.add_argument("--enable-at", metavar="ISO", help="on from this time ('none' clears)")
    p.add_argument("--disable-at", metavar="ISO", help="off from this time ('none' clears)")
    p.add_argument("--name", help="display name (default: the key, for a new flag)")
    p.add_argument("--description", help="what the flag is for ('' clears)")
    _audit_arguments(p)

    p = add("eval", eval_, "evaluate a flag for a user and role; prints on/off and the reason")
    p.add_argument("key")
    p.add_argument("--user", help="the user id")
    p.add_argument("--role")
    p.add_argument("--attr", action="append", metavar="NAME=VALUE", help="a context attribute")
    p.add_argument("--at", metavar="ISO", help="evaluate at this time (default now)")

    p = add("history", history, "a flag's changes, newest first")
    p.add_argument("key")
    p.add_argument("--limit", type=int, default=50)

    p = add("delete", delete, "delete a flag (exit 1 if it does not exist); history stays")
    p.add_argument("key")
    _audit_arguments(p)
