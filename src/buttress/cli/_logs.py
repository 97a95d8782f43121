"""How the command line shows log events: one plain, redacted line each, on stderr.

The command line is an application, so it decides where logs go: buttress's
structlog events and any library's stdlib logging reach stderr at WARNING and
above (``BUTTRESS_LOG_LEVEL`` lowers it) as ``warning: <what>`` lines, with no
timestamp and no traceback, and stdout carries only the command's output. A
line already shown is not shown again, so a warning a command reports itself
(``flags set``'s rollout warning) appears once.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Final

import structlog

from buttress.log import redact_text

__all__ = ["begin", "configure", "say"]

_shown: set[str] = set()
_HANDLER_MARK: Final = "_buttress_cli_handler"
_QUIET_KEYS: Final = frozenset({"event", "component", "level", "logger", "timestamp"})
_TEXT_KEYS: Final = ("warning", "message")


def begin() -> None:
    """A command starts: nothing has been said yet."""
    _shown.clear()


def say(line: str) -> None:
    """Print ``line`` on stderr unless it was already printed (by a log event or the command)."""
    if line in _shown:
        return
    _shown.add(line)
    print(line, file=sys.stderr, flush=True)


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _render(_logger: object, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    """An event as words: its ``warning``/``message`` text, else its name and fields."""
    failure = event_dict.pop("exc_info", None)
    event_dict.pop("exception", None)
    event_dict.pop("stack", None)
    if failure is True:
        failure = sys.exc_info()[1]
    elif isinstance(failure, tuple):
        failure = failure[1]
    text = next(
        (str(event_dict[key]) for key in _TEXT_KEYS if isinstance(event_dict.get(key), str)),
        None,
    )
    if text is None:
        fields = ", ".join(f"{k}={v}" for k, v in event_dict.items() if k not in _QUIET_KEYS)
        text = str(event_dict.get("event", "")) + (f" ({fields})" if fields else "")
    if isinstance(failure, BaseException):
        text += f" [{type(failure).__name__}]"
    return _one_line(text)


class _Lines(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = redact_text(_one_line(record.getMessage()))
        except Exception:  # noqa: BLE001  # a log line must never break the command
            text = str(record.msg)
        say(f"{record.levelname.lower()}: {text}")


def configure(level: str) -> None:
    """Route every log event to ``say`` at ``level`` (a name; unknown names mean WARNING)."""
    begin()
    number = logging.getLevelNamesMapping().get(level.strip().upper(), logging.WARNING)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    handler = _Lines()
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(number)
    # buttress.log.get_logger redacts around these processors (before and before the last).
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, _render],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        context_class=dict,
        cache_logger_on_first_use=False,
    )
