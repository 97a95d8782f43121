"""``buttress config get|set|list|history|delete|revert|maintenance``: config from a shell.

Each action is a plain ``(args) -> int`` function over ``ConfigStore`` on
``--dsn``; ``register`` wires them into the ``buttress`` parser. Sensitive
values are printed as the mask everywhere except ``get KEY --reveal``. Exit
codes: 0 done, 1 not found, 2 bad input or an unusable backend.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Awaitable, Callable

from buttress.backends import Backend
from buttress.cli._common import add_action, os_user, print_json, run_with_backend
from buttress.config._service import ConfigStore
from buttress.config._values import ALL, ConfigChange, ConfigEntry, JSONValue
from buttress.errors import ValidationError
from buttress.log import MASK

__all__ = [
    "delete",
    "get",
    "history",
    "list_",
    "maintenance",
    "parse_value",
    "register",
    "revert",
    "set_",
]

Command = Callable[[ConfigStore, argparse.Namespace], Awaitable[int]]

STDIN = "-"
"""A VALUE of ``-`` is read from standard input (keeps secrets out of shell history)."""


def _run(args: argparse.Namespace, command: Command) -> int:
    async def body(backend: Backend) -> int:
        store = ConfigStore(backend, environment=getattr(args, "environment", None) or ALL)
        try:
            return await command(store, args)
        finally:
            await store.stop()

    # buttress messages name the key and rule, never a value (it may be a secret).
    return run_with_backend(args, "config", body)


def parse_value(text: str) -> JSONValue:
    """VALUE as JSON; a bare word is refused with a hint to quote it. Never echoes the text."""
    try:
        value: JSONValue = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise ValidationError(
            "VALUE",
            "must be JSON: numbers, true/false/null, [lists], {objects}, or text in "
            """double quotes, e.g. '"text"' (single quotes keep the shell from eating them)""",
        ) from None
    return value


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _read_value(text: str) -> JSONValue:
    if text == STDIN:
        text = sys.stdin.read().strip()
    return parse_value(text)


def _entry_dict(entry: ConfigEntry, *, reveal: bool = False) -> dict[str, object]:
    shown = entry if reveal else entry.redacted()
    return {
        "key": shown.key,
        "value": shown.value,
        "environment": shown.environment,
        "sensitive": shown.sensitive,
        "redacted": shown.sensitive and not reveal,
        "description": shown.description,
        "updated_at": shown.updated_at.isoformat(),
        "updated_by": shown.updated_by,
        "version": shown.version,
    }


def _change_dict(change: ConfigChange) -> dict[str, object]:
    shown = change.redacted()
    return {
        "key": shown.key,
        "environment": shown.environment,
        "version": shown.version,
        "action": shown.action,
        "changed_at": shown.changed_at.isoformat(),
        "changed_by": shown.changed_by,
        "reason": shown.reason,
        "old_value": shown.old_value,
        "new_value": shown.new_value,
        "sensitive": shown.sensitive,
    }


def _text(value: JSONValue, sensitive: bool) -> str:
    return MASK if sensitive else json.dumps(value, sort_keys=True)


def _describe(entry: ConfigEntry, *, reveal: bool = False) -> str:
    value = _text(entry.value, entry.sensitive and not reveal)
    when = entry.updated_at.strftime("%Y-%m-%d %H:%M:%S")
    notes = [entry.environment, f"v{entry.version}", when]
    if entry.updated_by:
        notes.append(f"by {entry.updated_by}")
    if entry.sensitive:
        notes.append("sensitive")
    line = f"{entry.key} = {value}  ({', '.join(notes)})"
    return f"{line}  # {entry.description}" if entry.description else line


def _describe_change(change: ConfigChange) -> str:
    shown = change.redacted()
    when = shown.changed_at.strftime("%Y-%m-%d %H:%M:%S")
    old = "-" if shown.old_value is None else _text(shown.old_value, shown.sensitive)
    new = "-" if shown.new_value is None else _text(shown.new_value, shown.sensitive)
    line = f"v{shown.version:<4} {when}  {shown.action:<7} {old} -> {new}"
    if shown.changed_by:
        line += f"  by {shown.changed_by}"
    return f"{line}: {shown.reason}" if shown.reason else line


async def _get(store: ConfigStore, args: argparse.Namespace) -> int:
    entry = await store.get_entry(args.key)
    if entry is None:
        if args.json:
            print_json(None)
        else:
            print(f"config {args.key!r} is not set for {store.environment}", file=sys.stderr)
        return 1
    if args.json:
        print_json(_entry_dict(entry, reveal=args.reveal))
    else:
        print(_describe(entry, reveal=args.reveal))
    return 0


async def _set(store: ConfigStore, args: argparse.Namespace) -> int:
    value = _read_value(args.value)
    sensitive: bool | None = args.sensitive
    if sensitive is None:
        # A secret stays a secret unless --no-sensitive says otherwise: forgetting
        # the flag on an update, or on an override of an "all" secret for one
        # environment, must not start printing the value everywhere.
        current = await store.get_entry(args.key)
        sensitive = current is not None and current.sensitive
    entry = await store.set(
        args.key,
        value,
        updated_by=args.updated_by,
        environment=store.environment,
        sensitive=sensitive,
        description=args.description,
        reason=args.reason,
        expected_version=args.expected_version,
    )
    if args.json:
        print_json(_entry_dict(entry))
    else:
        print(f"set {_describe(entry)}")
    return 0


async def _list(store: ConfigStore, args: argparse.Namespace) -> int:
    environment = None if store.environment == ALL and not args.environment else store.environment
    entries = await store.list(environment)
    if args.json:
        print_json([_entry_dict(entry) for entry in entries])
    elif not entries:
        print("no config entries")
    else:
        for entry in entries:
            print(_describe(entry))
    return 0


async def _history(store: ConfigStore, args: argparse.Namespace) -> int:
    changes = await store.history(args.key, environment=store.environment, limit=args.limit)
    if args.json:
        print_json([_change_dict(change) for change in changes])
    elif not changes:
        print(f"no changes recorded for {args.key!r} in {store.environment}")
    else:
        for change in changes:
            print(_describe_change(change))
    return 0


async def _delete(store: ConfigStore, args: argparse.Namespace) -> int:
    deleted = await store.delete(
        args.key,
        environment=store.environment,
        updated_by=args.updated_by,
        reason=args.reason,
        expected_version=args.expected_version,
    )
    if args.json:
        print_json({"key": args.key, "environment": store.environment, "deleted": deleted})
    elif deleted:
        print(f"deleted {args.key} ({store.environment})")
    else:
        print(f"config {args.key!r} is not set for {store.environment}", file=sys.stderr)
    return 0 if deleted else 1


async def _revert(store: ConfigStore, args: argparse.Namespace) -> int:
    entry = await store.revert(
        args.key,
        args.version,
        environment=store.environment,
        updated_by=args.updated_by,
        reason=args.reason,
    )
    if args.json:
        print_json(None if entry is None else _entry_dict(entry))
    elif entry is None:
        print(f"reverted {args.key} ({store.environment}) to version {args.version}: deleted")
    else:
        print(f"reverted {_describe(entry)}")
    return 0


async def _maintenance(store: ConfigStore, args: argparse.Namespace) -> int:
    if args.state != "status":
        await store.set_maintenance_mode(
            args.state == "on", updated_by=args.updated_by, reason=args.reason
        )
    enabled = await store.is_maintenance_mode()
    if args.json:
        print_json({"environment": store.environment, "maintenance_mode": enabled})
    else:
        print(f"maintenance mode is {'on' if enabled else 'off'} for {store.environment}")
    return 0


def get(args: argparse.Namespace) -> int:
    return _run(args, _get)


def set_(args: argparse.Namespace) -> int:
    return _run(args, _set)


def list_(args: argparse.Namespace) -> int:
    return _run(args, _list)


def history(args: argparse.Namespace) -> int:
    return _run(args, _history)


def delete(args: argparse.Namespace) -> int:
    return _run(args, _delete)


def revert(args: argparse.Namespace) -> int:
    return _run(args, _revert)


def maintenance(args: argparse.Namespace) -> int:
    return _run(args, _maintenance)


def _audit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--updated-by", default=os_user(), help="who makes the change (default: the OS user)"
    )
    parser.add_argument("--reason", help="why, kept in the history")


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add ``config`` and its actions; ``common`` carries ``--dsn`` and ``--json``."""
    config = subparsers.add_parser("config", help="read and change runtime configuration")
    commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)

    add = functools.partial(add_action, commands, common)

    def environment(parser: argparse.ArgumentParser, help: str) -> None:
        parser.add_argument("--environment", "-e", default=None, help=help)

    p = add("get", get, "show a key's entry as the environment sees it (exit 1 if unset)")
    p.add_argument("key")
    environment(p, "read as this environment (its entry first, then 'all'; default all)")
    p.add_argument(
        "--reveal", action="store_true", help="print a sensitive value instead of the mask"
    )

    p = add("set", set_, "store a JSON value for a key")
    p.add_argument("key")
    p.add_argument("value", help="JSON: 42, true, null, '\"text\"', '[1,2]', or - to read stdin")
    environment(p, "the environment the entry is for (default all)")
    p.add_argument(
        "--sensitive",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mask the value in listings, history and logs (default: keep the entry's setting)",
    )
    p.add_argument("--description")
    _audit_arguments(p)
    p.add_argument(
        "--expected-version",
        type=int,
        help="write only if the entry is at this version (0: only if it does not exist)",
    )

    p = add("list", list_, "list entries, sensitive values masked")
    environment(p, "only this environment's and 'all' entries (default: every entry)")

    p = add("history", history, "a key's changes, newest first, sensitive values masked")
    p.add_argument("key")
    environment(p, "the environment whose entry's history to show (default all)")
    p.add_argument("--limit", type=int, default=50)

    p = add("delete", delete, "delete a key's entry (exit 1 if there was none); history stays")
    p.add_argument("key")
    environment(p, "the environment whose entry to delete (default all)")
    _audit_arguments(p)
    p.add_argument("--expected-version", type=int)

    p = add("revert", revert, "restore the value a key had at VERSION, as a new change")
    p.add_argument("key")
    p.add_argument("version", type=int)
    environment(p, "the environment whose entry to revert (default all)")
    _audit_arguments(p)

    p = add("maintenance", maintenance, "switch maintenance mode on or off, or show it")
    p.add_argument("state", choices=("on", "off", "status"))
    environment(p, "the environment to switch or read (default all)")
    _audit_arguments(p)
