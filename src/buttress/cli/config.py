"""``buttress config get|set|list|history|delete|revert|maintenance``: config from a shell.

Each action is a body over ``ConfigStore`` on ``--dsn``, run by ``_common.run``:
``get``, ``list``, ``history`` and ``maintenance`` without a state only look;
the others write, on a database ``buttress migrate`` has set up. Sensitive
values print as the mask everywhere except ``get KEY --reveal``. Exit codes:
0 done, 1 not found, 2 bad input or an unusable backend.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys

from buttress.backends import Backend
from buttress.cli._common import (
    Access,
    Reply,
    Subparsers,
    action_group,
    add_audit_arguments,
    add_revert_arguments,
    audit,
    component_handler,
    listing,
    not_found,
)
from buttress.config import ALL, ConfigChange, ConfigEntry, ConfigStore, JSONValue
from buttress.errors import ValidationError
from buttress.log import MASK

__all__ = ["parse_value", "register"]

STDIN = "-"
"""A VALUE of ``-`` is read from standard input (keeps secrets out of shell history)."""


def _store(backend: Backend, args: argparse.Namespace) -> ConfigStore:
    # Only a missing option means "all": an empty one (``-e "$ENV"`` with ENV
    # unset) is refused by the store rather than widened to every environment.
    environment = getattr(args, "environment", None)
    return ConfigStore(backend, environment=ALL if environment is None else environment)


# buttress messages name the key and rule, never a value (it may be a secret).
_handler = functools.partial(component_handler, _store)


def parse_value(text: str) -> JSONValue:
    """VALUE as JSON; a bare word is refused with a hint to quote it. Never echoes the text."""
    try:
        value: JSONValue = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        # Too deep for the parser, far deeper than the store's 64 levels.
        raise ValidationError("VALUE", "nests deeper than 64 levels") from None
    except ValueError:
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


def _not_set(key: str, store: ConfigStore, payload: object = None) -> Reply:
    return not_found(f"config {key!r} is not set for {store.environment}", payload)


async def _get(store: ConfigStore, args: argparse.Namespace) -> Reply:
    entry = await store.get_entry(args.key)
    if entry is None:
        return _not_set(args.key, store)
    return Reply(_entry_dict(entry, reveal=args.reveal), _describe(entry, reveal=args.reveal))


async def _set(store: ConfigStore, args: argparse.Namespace) -> Reply:
    value = _read_value(args.value)
    # Neither --sensitive nor --no-sensitive: None, and the store keeps a secret
    # a secret (also when this entry overrides an "all" secret for one environment).
    entry = await store.set(
        args.key,
        value,
        environment=store.environment,
        sensitive=args.sensitive,
        description=args.description,
        expected_version=args.expected_version,
        **audit(args),
    )
    return Reply(_entry_dict(entry), f"set {_describe(entry)}")


async def _list(store: ConfigStore, args: argparse.Namespace) -> Reply:
    environment = None if store.environment == ALL and not args.environment else store.environment
    entries = await store.list(environment)
    return listing(entries, _describe, _entry_dict, "no config entries")


async def _history(store: ConfigStore, args: argparse.Namespace) -> Reply:
    changes = await store.history(args.key, environment=store.environment, limit=args.limit)
    empty = f"no changes recorded for {args.key!r} in {store.environment}"
    return listing(changes, _describe_change, _change_dict, empty)


async def _delete(store: ConfigStore, args: argparse.Namespace) -> Reply:
    deleted = await store.delete(
        args.key,
        environment=store.environment,
        **audit(args),
        expected_version=args.expected_version,
    )
    payload = {"key": args.key, "environment": store.environment, "deleted": deleted}
    if not deleted:
        return _not_set(args.key, store, payload)
    return Reply(payload, f"deleted {args.key} ({store.environment})")


async def _revert(store: ConfigStore, args: argparse.Namespace) -> Reply:
    entry = await store.revert(
        args.key,
        args.version,
        environment=store.environment,
        **audit(args),
    )
    if entry is None:
        text = f"reverted {args.key} ({store.environment}) to version {args.version}: deleted"
        return Reply(None, text)
    return Reply(_entry_dict(entry), f"reverted {_describe(entry)}")


async def _maintenance(store: ConfigStore, args: argparse.Namespace) -> Reply:
    if args.state in ("on", "off"):
        await store.set_maintenance_mode(args.state == "on", **audit(args))
    enabled = await store.is_maintenance_mode()
    return Reply(
        {"environment": store.environment, "maintenance_mode": enabled},
        f"maintenance mode is {'on' if enabled else 'off'} for {store.environment}",
    )


def _maintenance_handler(args: argparse.Namespace) -> int:
    # Showing the state only looks; switching it writes.
    access = Access.SET_UP if args.state in ("on", "off") else Access.EXISTING
    return _handler(_maintenance, access)(args)


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``config`` and its actions; ``common`` carries ``--dsn`` and ``--json``."""
    add = action_group(subparsers, common, "config", "read and change runtime configuration")
    looks, writes = Access.EXISTING, Access.SET_UP

    def environment(parser: argparse.ArgumentParser, help: str) -> None:
        parser.add_argument("--environment", "--env", "-e", dest="environment", help=help)

    p = add(
        "get",
        _handler(_get, looks),
        "show a key's entry as the environment sees it (exit 1 if unset)",
    )
    p.add_argument("key")
    environment(p, "read as this environment (its entry first, then 'all'; default all)")
    p.add_argument(
        "--reveal", action="store_true", help="print a sensitive value instead of the mask"
    )

    p = add("set", _handler(_set, writes), "store a JSON value for a key")
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
    add_audit_arguments(p)
    p.add_argument(
        "--expected-version",
        type=int,
        help="write only if the entry is at this version (0: only if it does not exist)",
    )

    p = add("list", _handler(_list, looks), "list entries, sensitive values masked")
    environment(p, "only this environment's and 'all' entries (default: every entry)")

    p = add(
        "history",
        _handler(_history, looks),
        "a key's changes, newest first, sensitive values masked",
    )
    p.add_argument("key")
    environment(p, "the environment whose entry's history to show (default all)")
    p.add_argument("--limit", type=int, default=50)

    p = add(
        "delete",
        _handler(_delete, writes),
        "delete a key's entry (exit 1 if there was none); history stays",
    )
    p.add_argument("key")
    environment(p, "the environment whose entry to delete (default all)")
    add_audit_arguments(p)
    p.add_argument("--expected-version", type=int)

    p = add(
        "revert",
        _handler(_revert, writes),
        "restore the value a key had at VERSION, as a new change",
    )
    add_revert_arguments(p)
    environment(p, "the environment whose entry to revert (default all)")

    p = add("maintenance", _maintenance_handler, "show maintenance mode, or switch it on or off")
    p.add_argument(
        "state",
        nargs="?",
        default="status",
        choices=("on", "off", "status"),
        help="on or off to switch it; status (the default) to show it",
    )
    environment(p, "the environment to switch or read (default all)")
    add_audit_arguments(p)
