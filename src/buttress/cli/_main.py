"""The ``buttress`` parser and dispatch: assemble the commands, parse, run one.

Each command module has ``register(subparsers, common)``; ``common`` carries
``--dsn`` and ``--json``, which the top-level parser takes as well, so both go
before or after the command. Usage errors pass through the redactor (a DSN
typed in the wrong place is never echoed with its password) and, under
``--json``, are a JSON error object too. Exit codes: 0 ok, 1 warnings,
2 errors (usage errors included).
"""

from __future__ import annotations

import argparse
import contextvars
import json
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from buttress._version import __version__
from buttress.cli import _logs
from buttress.cli._common import DEFAULT_DSN, default_dsn
from buttress.log import redact_text

__all__ = ["build_parser", "main"]

_USAGE: contextvars.ContextVar[tuple[bool, str]] = contextvars.ContextVar(
    "usage", default=(False, "")
)
"""For the parse under way: whether ``--json`` was asked for, and the command named."""
_COMMANDS = frozenset(
    [
        "doctor",
        "migrate",
        "schema",
        "integrity",
        "audit",
        "config",
        "flags",
        "deploy",
        "monitor",
        "errors",
    ]
)
"""The top-level commands ``build_parser`` registers (named in usage errors under --json)."""


class _Parser(argparse.ArgumentParser):
    """argparse, with every message it prints redacted (sub-parsers are made of this class)."""

    def error(self, message: str) -> NoReturn:
        # One line, like every other failure (the usage block is for --help), or
        # the JSON error object alone under --json.
        message = redact_text(message)
        wants_json, named = _USAGE.get()
        if wants_json:
            command = self.prog.removeprefix("buttress").strip() or named
            error = {"command": command, "message": message, "type": "UsageError"}
            print(json.dumps({"ok": False, "error": error}, indent=2))
            self.exit(2)
        self.exit(2, f"{self.prog}: {message} (see: {self.prog} --help)\n")


def _common() -> argparse.ArgumentParser:
    # SUPPRESS: an option given before the command is not reset by the command's parser.
    common = _Parser(add_help=False)
    common.add_argument(
        "--dsn",
        default=argparse.SUPPRESS,
        help=f"backend to use (default: $BUTTRESS_DSN, else {DEFAULT_DSN})",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON instead of text"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The whole ``buttress`` parser; each action's handler is ``args.handler(args) -> int``."""
    common = _common()
    parser: argparse.ArgumentParser = _Parser(
        prog="buttress",
        description="Operate the reliability parts of a Python service.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"buttress {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")

    from buttress.cli import config, deploy, doctor, errors, flags, integrity, migrate, monitor
    from buttress.cli import schema as schema_command

    for module in (doctor, migrate, schema_command, integrity, config, flags, deploy, monitor):
        module.register(subparsers, common)
    errors.register(subparsers, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``buttress`` command; return its exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    # The command line is an application: its logs go to stderr as plain lines, so
    # stdout carries only the command's output (and stays valid JSON under --json).
    _logs.configure(os.environ.get("BUTTRESS_LOG_LEVEL") or "WARNING")
    parser = build_parser()
    named = next((a for a in arguments if a in _COMMANDS), "")
    token = _USAGE.set(("--json" in arguments, named))
    try:
        args = parser.parse_args(arguments)
    finally:
        _USAGE.reset(token)
    args.dsn = getattr(args, "dsn", None) or default_dsn()
    args.json = bool(getattr(args, "json", False))
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = handler(args)
    except KeyboardInterrupt:
        print("buttress: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``buttress ... | head``): not an error of ours.
        # Point stdout at /dev/null so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return code
