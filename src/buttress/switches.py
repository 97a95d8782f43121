"""Global off switches an operator flips with an environment variable.

``ENABLE_CIRCUIT_BREAKER=false`` turns every circuit breaker into a
pass-through (no call is refused) and ``ENABLE_RATE_LIMIT=false`` turns every
rate limiter into allow-all, without a deploy: the variables are read at call
time, every time a breaker would refuse or a limiter decides.

A switch removes refusals, not bookkeeping: while breakers are switched off a
closed breaker still counts outcomes (so its state keeps telling the truth and
it recovers through half-open as usual), and a call it would have refused runs
unrecorded. A switched-off limiter answers allowed with ``remaining`` at the
limit and touches no store, so it also helps when the store is the incident.

``false``, ``0``, ``no`` and ``off`` (any case, surrounding spaces ignored)
switch off; unset, empty, ``true``, ``1``, ``yes`` and ``on`` leave the
protection on. Any other value also leaves it on (failing safe), is logged
once and reported by ``buttress doctor``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Container, Mapping
from typing import Any, Final

import attrs

__all__ = [
    "CIRCUIT_BREAKER",
    "ENVIRON",
    "RATE_LIMIT",
    "SWITCHES",
    "Switch",
    "SwitchState",
    "raw_value",
]

_OFF: Final = frozenset({"false", "0", "no", "off"})
_ON: Final = frozenset({"", "true", "1", "yes", "on"})


def _raw_reader() -> tuple[Mapping[Any, Any], Callable[[str], object]]:
    # os.environ.get costs a key encode, a value decode and, for a missing key, a
    # caught KeyError (about a microsecond); its backing dict answers in tens of
    # nanoseconds with the key encoded once. Writes through os.environ (and
    # monkeypatch.setenv) update that dict, so reads stay exact.
    data = getattr(os.environ, "_data", None)
    encode = getattr(os.environ, "encodekey", None)
    if isinstance(data, dict) and callable(encode):
        return data, encode
    return os.environ, str  # pragma: no cover - other Pythons


_environ, _encode = _raw_reader()

ENVIRON: Final[Container[object]] = _environ
"""The environment as ``switch.key`` finds it: ``switch.key in ENVIRON`` says
whether the variable is set at all, without a call (the cheapest hot-path test
before ``switch.off()``)."""

raw_value: Final = _environ.get
"""``raw_value(switch.key)``: the variable's raw value or ``None``, for hot paths
that test ``raw_value(key) is not None`` before calling ``switch.off()``."""


def _text(raw: object) -> str:
    if isinstance(raw, bytes):
        return os.fsdecode(raw)
    return str(raw)


@attrs.frozen
class SwitchState:
    """What a switch's variable says right now (for doctor and the metrics)."""

    variable: str
    value: str | None
    """The variable's text, ``None`` when unset."""
    enabled: bool
    valid: bool
    """False when the text is neither an on nor an off word (the switch stays on)."""

    def describe(self) -> str:
        """One line: the variable's value and what it means (the variable is not repeated)."""
        if self.value is None:
            return "unset: on"
        if not self.valid:
            return (
                f"{self.value!r} is not one of true/false/1/0/yes/no/on/off; "
                "the protection stays on"
            )
        return f"{self.value!r}: {'on' if self.enabled else 'SWITCHED OFF'}"


class Switch:
    """One global switch, read from its environment variable at call time."""

    __slots__ = ("_lock", "_verdicts", "_warned", "bypassed", "key", "name", "variable")

    def __init__(self, name: str, variable: str) -> None:
        self.name = name
        self.variable = variable
        self.key = _encode(variable)
        """The variable's name as the environment's mapping keys it (``raw_value``)."""
        # Raw value -> switched off? Bounded: a new entry only when the variable
        # is given a value not seen before.
        self._verdicts: dict[object, bool] = {}
        self._lock = threading.Lock()
        self._warned = False
        self.bypassed = 0
        """Calls let through because the switch was off (lock-free, may undercount)."""

    def __repr__(self) -> str:
        return f"Switch({self.name!r}, variable={self.variable!r}, off={self.off()})"

    def off(self) -> bool:
        """True when the variable switches the protection off right now."""
        raw = _environ.get(self.key)
        if raw is None:
            return False
        verdict = self._verdicts.get(raw)
        if verdict is None:
            verdict = self._judge(raw)
        return verdict

    def bypass(self) -> bool:
        """``off()``, counting one call let through when it is."""
        if self.off():
            self.bypassed += 1
            return True
        return False

    def enabled(self) -> bool:
        """The protection is on (the opposite of ``off``)."""
        return not self.off()

    def state(self) -> SwitchState:
        """The variable's text and meaning, for reports."""
        raw = _environ.get(self.key)
        if raw is None:
            return SwitchState(self.variable, None, enabled=True, valid=True)
        text = _text(raw)
        word = text.strip().lower()
        return SwitchState(self.variable, text, enabled=word not in _OFF, valid=word in _OFF | _ON)

    def _judge(self, raw: object) -> bool:
        word = _text(raw).strip().lower()
        verdict = word in _OFF
        if not verdict and word not in _ON and not self._warned:
            self._warned = True
            from buttress.log import get_logger

            get_logger("switches").warning(
                "switch.invalid_value",
                variable=self.variable,
                detail="not a true/false word; the protection stays on",
            )
        with self._lock:
            if len(self._verdicts) > 64:
                self._verdicts.clear()
            self._verdicts[raw] = verdict
        return verdict


CIRCUIT_BREAKER: Final = Switch("circuit_breaker", "ENABLE_CIRCUIT_BREAKER")
"""Off: every circuit breaker lets every call through."""

RATE_LIMIT: Final = Switch("rate_limit", "ENABLE_RATE_LIMIT")
"""Off: every rate limiter allows every request, without touching its store."""

SWITCHES: Final = (CIRCUIT_BREAKER, RATE_LIMIT)
