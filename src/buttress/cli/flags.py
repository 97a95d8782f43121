"""``buttress flags list|get|set|eval|history|delete|revert``: feature flags from a shell.

Each action is a body over ``FeatureFlags`` on ``--dsn`` (no polling, no
subscription), run by ``_common.run``: ``list``, ``get``, ``eval`` and
``history`` only look; ``set``, ``delete`` and ``revert`` write, on a database ``buttress
migrate`` has set up. ``set`` creates or updates and reports ``rollout_warning``
(once) when a change crosses "percentage 0 means everyone". Exit codes: 0 done,
1 not found, 2 bad input or an unusable backend.
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from buttress.backends import Backend
from buttress.cli._common import (
    Access,
    Outcome,
    Reply,
    Subparsers,
    action_group,
    add_audit_arguments,
    add_revert_arguments,
    audit,
    component_handler,
    listing,
    not_found,
    parse_time,
)
from buttress.errors import ValidationError
from buttress.flags import (
    FeatureFlags,
    Flag,
    FlagChange,
    FlagContext,
    FlagEvaluation,
    Reason,
    evaluate,
    rollout_warning,
)

__all__ = ["register"]

_CLEAR = ("", "none")
"""``--enable-at none`` / ``--users ''`` clear the field."""


def _flags(backend: Backend, args: argparse.Namespace) -> FeatureFlags:
    # No polling and no subscription: one command, one read or write.
    return FeatureFlags(backend, refresh_interval=None)


_handler = functools.partial(component_handler, _flags)


def _time(field: str, text: str | None) -> datetime | None:
    if text is not None and text.strip().lower() in _CLEAR:
        return None
    return parse_time(field, text)


def _names(text: str) -> frozenset[str]:
    return frozenset(name.strip() for name in text.split(",") if name.strip())


def _percentage(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValidationError("percentage", "must be a number between 0 and 100") from None
    _refuse_underflow("percentage", text, value)
    return value or 0.0  # -0 is 0


def _refuse_underflow(field: str, text: str, value: float) -> None:
    """Refuse a number written as not 0 that reads as 0 (``1e-400``): it would be stored
    as 0, which for a percentage means "no rollout rule", on for everyone."""
    if value != 0:
        return
    try:
        written = Decimal(text.strip())
    except InvalidOperation:  # pragma: no cover - float() read it, so Decimal can
        return
    if written != 0:
        why = " (a percentage of 0 means no rollout rule)" if field == "percentage" else ""
        raise ValidationError(
            field,
            f"{text.strip()[:40]} is not 0 but too small to store: it would be saved as "
            f"0{why}; give 0 or a larger number",
        )


def _attribute_value(text: str) -> object:
    """A number or true/false as JSON reads it; anything else is the text itself."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, int | float | bool) else text


def _attributes(pairs: list[str] | None) -> dict[str, object]:
    attributes: dict[str, object] = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValidationError("--attr", "must be NAME=VALUE")
        attributes[name] = _attribute_value(value)
    return attributes


def _json_option(field: str, text: str) -> Any:
    """A targeting option's JSON; ``''`` or ``none`` clears it. A number written as not
    0 that a float holds as 0 (``1e-400``, in a split, say) is refused."""
    if text.strip().lower() in _CLEAR:
        return None

    def number(literal: str) -> float:
        value = float(literal)
        _refuse_underflow(field, literal, value)
        return value

    try:
        return json.loads(text, parse_float=number)
    except json.JSONDecodeError as exc:
        raise ValidationError(field, f"must be JSON ({exc.msg} at column {exc.colno})") from None


_SHOWN: tuple[tuple[str, Callable[[Any], str]], ...] = (
    ("users", lambda users: "users=" + ",".join(sorted(users))),
    ("roles", lambda roles: "roles=" + ",".join(sorted(roles))),
    ("percentage", lambda percentage: f"{percentage:g}%"),
    ("enable_at", lambda at: f"from {at.isoformat()}"),
    ("disable_at", lambda at: f"until {at.isoformat()}"),
    ("variants", lambda variants: "variants=" + ",".join(variants)),
    ("rules", lambda rules: f"rules={len(rules)}"),
    ("split", lambda split: "split=" + ",".join(f"{name}:{weight:g}%" for name, weight in split)),
)
"""How ``flags list`` shows each targeting field that is set (not empty, not zero), in order."""


def _describe(flag: Flag) -> str:
    rules = [show(value) for field, show in _SHOWN if (value := getattr(flag, field))]
    if flag.default_variant is not None:
        rules.append(f"default={flag.default_variant}")
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


def _describe_change(change: FlagChange) -> str:
    when = change.changed_at.strftime("%Y-%m-%d %H:%M:%S")
    line = f"v{change.version:<4} {when}  {change.action:<6}"
    if change.changed_by:
        line += f" by {change.changed_by}"
    if change.reason:
        line += f": {change.reason}"
    fields = _changed_fields(change)
    return f"{line}  [{fields}]" if fields else line


def _problem_notes(flag: Flag | None) -> tuple[str, ...]:
    """Stderr lines for what today's rules refuse in a stored flag (``Flag.problems``)."""
    if flag is None:
        return ()
    return tuple(
        f"warning: {flag.key}: {field}: {rule}; fix it to change this flag"
        + ("; this condition never matches meanwhile" if field.startswith("rules[") else "")
        for field, rule in flag.problems
    )


def _missing(key: str, payload: object = None) -> Reply:
    return not_found(f"flag {key!r} does not exist", payload)


async def _list(flags: FeatureFlags, args: argparse.Namespace) -> Reply:
    every = await flags.list()
    reply = listing(every, _describe, Flag.to_dict, "no flags")
    notes = tuple(note for flag in every for note in _problem_notes(flag))
    return attrs.evolve(reply, notes=notes) if notes else reply


async def _get(flags: FeatureFlags, args: argparse.Namespace) -> Reply:
    flag = await flags.get(args.key)
    if flag is None:
        return _missing(args.key)
    text = _describe(flag) + (f"\n  {flag.description}" if flag.description else "")
    return Reply(flag.to_dict(), text, notes=_problem_notes(flag))


def _rules(text: str) -> Any:
    rules = _json_option("rules", text)
    return () if rules is None else rules


def _variant_name(text: str) -> str | None:
    name = text.strip()
    return None if name.lower() in _CLEAR else name


_PARSED: dict[str, Callable[[Any], Any]] = {
    "enabled": bool,
    "percentage": _percentage,
    "users": _names,
    "roles": _names,
    "enable_at": functools.partial(_time, "enable_at"),
    "disable_at": functools.partial(_time, "disable_at"),
    "name": str,
    "description": lambda text: text or None,
    "variants": functools.partial(_json_option, "variants"),
    "rules": _rules,
    "split": functools.partial(_json_option, "split"),
    "metadata": functools.partial(_json_option, "metadata"),
    "default_variant": _variant_name,
}
"""How ``flags set`` reads each field's option; an option not given changes nothing."""


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    return {
        field: parse(value)
        for field, parse in _PARSED.items()
        if (value := getattr(args, field)) is not None
    }


async def _set(flags: FeatureFlags, args: argparse.Namespace) -> Reply:
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
    await flags.upsert(new, **audit(args))
    warning = rollout_warning(old, new)
    action = "created" if old is None else "updated"
    return Reply(
        {"action": action, "flag": new.to_dict(), "warning": warning},
        f"{action} {_describe(new)}",
        notes=() if warning is None else (f"warning: {warning}",),
    )


async def _eval(flags: FeatureFlags, args: argparse.Namespace) -> Reply:
    context = FlagContext(args.user, args.role, _attributes(args.attr))
    at = _time("at", args.at) or datetime.now(UTC)
    flag = await flags.get(args.key)
    if flag is None:
        result = FlagEvaluation(args.key, False, Reason.UNKNOWN_FLAG)
    else:
        result = evaluate(flag, context, at)
    state = "on" if result.enabled else "off"
    bucket = "" if result.bucket is None else f", bucket {result.bucket / 100:.2f}"
    payload = {
        "key": result.key,
        "enabled": result.enabled,
        "reason": result.reason.value,
        "bucket": result.bucket,
        "variant": result.variant,
        "value": result.value,
    }
    served = ""
    if flag is not None and flag.variants and result.variant is not None:
        served = f" variant {result.variant} = {json.dumps(result.value)}"
    outcome = Outcome.WARNING if flag is None else Outcome.OK
    text = f"{result.key}: {state}{served} ({result.reason.value}{bucket})"
    return Reply(payload, text, outcome, notes=_problem_notes(flag))


async def _history(flags: FeatureFlags, args: argparse.Namespace) -> Reply:
    changes = await flags.history(args.key, args.limit)
    empty = f"no changes recorded for {args.key!r}"
    return listing(changes, _describe_change, _change_dict, empty)


async def _revert(flags: FeatureFlags, args: argparse.Namespace) -> Reply:
    flag = await flags.revert(args.key, args.version, **audit(args))
    if flag is None:
        return Reply(None, f"reverted {args.key} to version {args.version}: deleted")
    return Reply(flag.to_dict(), f"reverted {_describe(flag)}")


async def _delete(flags: FeatureFlags, args: argparse.Namespace) -> Reply:
    deleted = await flags.delete(args.key, **audit(args))
    payload = {"key": args.key, "deleted": deleted}
    if not deleted:
        return _missing(args.key, payload)
    return Reply(payload, f"deleted {args.key}")


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``flags`` and its actions; ``common`` carries ``--dsn`` and ``--json``."""
    add = action_group(subparsers, common, "flags", "list, change and evaluate feature flags")
    looks, writes = Access.EXISTING, Access.SET_UP

    add("list", _handler(_list, looks), "list every flag")

    p = add("get", _handler(_get, looks), "show one flag (exit 1 if it does not exist)")
    p.add_argument("key")

    p = add("set", _handler(_set, writes), "create a flag or change some of its fields")
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
    p.add_argument(
        "--variants", metavar="JSON", help='named values, e.g. \'{"a": "A", "b": 2}\' (none clears)'
    )
    p.add_argument(
        "--rules",
        metavar="JSON",
        help='targeting rules, first match wins, e.g. \'[{"when": [{"attribute": '
        '"plan", "operator": "in", "value": ["pro"]}], "variant": "b"}]\'',
    )
    p.add_argument(
        "--split", metavar="JSON", help='percentages per variant, e.g. \'{"a": 50, "b": 50}\''
    )
    p.add_argument("--default-variant", metavar="NAME", help="served when nothing else decides")
    p.add_argument("--metadata", metavar="JSON", help="free-form str/number/bool values")
    add_audit_arguments(p)

    p = add(
        "eval",
        _handler(_eval, looks),
        "evaluate a flag for a user and role: on/off and why (exit 1 if it does not exist)",
    )
    p.add_argument("key")
    p.add_argument("--user", help="the user id")
    p.add_argument("--role")
    p.add_argument(
        "--attr",
        action="append",
        metavar="NAME=VALUE",
        help="a context attribute (numbers and true/false are read as JSON, the rest as text)",
    )
    p.add_argument("--at", metavar="ISO", help="evaluate at this time (default now)")

    p = add("history", _handler(_history, looks), "a flag's changes, newest first")
    p.add_argument("key")
    p.add_argument("--limit", type=int, default=50)

    p = add(
        "delete",
        _handler(_delete, writes),
        "delete a flag (exit 1 if it does not exist); history stays",
    )
    p.add_argument("key")
    add_audit_arguments(p)

    p = add(
        "revert",
        _handler(_revert, writes),
        "restore the flag as it was at VERSION (see history), as a new change",
    )
    add_revert_arguments(p)
