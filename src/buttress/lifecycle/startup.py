"""Start-up validation: find every problem before the service takes traffic.

``StartupValidator.run()`` checks the environment, the backend, required
tables and config keys, the schema, migrations and custom checks, collecting
every failure as one actionable line; it never stops at the first one and never
raises because a check failed. ``enforce()`` applies the mode: production
aborts with ``StartupError``, development logs warnings and carries on.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from buttress._exceptions import ValidationError
from buttress._safe import safe_error_message
from buttress.lifecycle._checks import (
    StartupCheckFn,
    check_migrations,
    check_schema,
    check_tables,
    custom,
    ping,
    redact,
    unreachable,
)
from buttress.lifecycle.env import EnvVar, check_env
from buttress.lifecycle.report import (
    CheckStatus,
    Mode,
    StartupCheck,
    StartupError,
    StartupReport,
    render_startup_text,
)
from buttress.log import get_logger

if TYPE_CHECKING:
    from buttress.config import EnvSetting, Setting

__all__ = [
    "CheckStatus",
    "Mode",
    "StartupCheck",
    "StartupCheckFn",
    "StartupError",
    "StartupReport",
    "StartupValidator",
    "render_startup_text",
]

_log = get_logger("lifecycle")


def _mode(value: str) -> Mode:
    if value == "production":
        return "production"
    if value == "development":
        return "development"
    raise ValidationError("mode", "must be 'production' or 'development'")


def _custom_name(check: StartupCheckFn) -> str:
    name = getattr(check, "__name__", None)
    return name if isinstance(name, str) and name != "<lambda>" else type(check).__name__


class StartupValidator:
    """Collects every start-up problem; see the module docstring.

    >>> report = await StartupValidator(                          # doctest: +SKIP
    ...     dsn=os.environ.get("DATABASE_URL"),
    ...     required_env=["DATABASE_URL", EnvVar("PORT", "int")],
    ...     required_tables=["users"],
    ... ).run()
    """

    def __init__(
        self,
        *,
        dsn: str | None = None,
        backend: object | None = None,
        required_env: Iterable[str | EnvVar | EnvSetting[Any]] = (),
        required_tables: Iterable[str] = (),
        schema: object | None = None,
        migrations_dir: str | os.PathLike[str] | None = None,
        checks: Iterable[StartupCheckFn | tuple[str, StartupCheckFn]] = (),
        config: object | None = None,
        required_config: Iterable[str | Setting[Any]] = (),
        mode: Mode = "production",
        environ: Mapping[str, str] | None = None,
        check_timeout: float = 10.0,
    ) -> None:
        if dsn is not None and backend is not None:
            raise ValidationError("dsn", "pass either dsn or backend, not both")
        if isinstance(required_env, str):
            raise ValidationError("required_env", "must be a list of names, not one string")
        if isinstance(required_tables, str):
            raise ValidationError("required_tables", "must be a list of names, not one string")
        if not math.isfinite(check_timeout) or check_timeout <= 0:
            raise ValidationError("check_timeout", "must be finite and > 0 seconds")
        self.dsn = dsn
        self.backend = backend
        self.required_env: tuple[EnvVar | EnvSetting[Any], ...] = tuple(
            EnvVar(v) if isinstance(v, str) else v for v in required_env
        )
        for var in self.required_env:
            # Duck-typed like ``config``: an EnvSetting answers problem(environ).
            if not isinstance(var, EnvVar) and not callable(getattr(var, "problem", None)):
                raise ValidationError(
                    "required_env", "each item must be a name, an EnvVar or an EnvSetting"
                )
        self.required_tables = tuple(required_tables)
        self.schema = schema
        self.migrations_dir = migrations_dir
        self.custom_checks: list[tuple[str, StartupCheckFn]] = []
        for item in checks:
            if isinstance(item, tuple):
                self.custom_checks.append(item)
            elif callable(item):
                self.custom_checks.append((_custom_name(item), item))
            else:
                raise ValidationError("checks", "each check must be callable or (name, callable)")
        self.config = config
        if isinstance(required_config, str):
            raise ValidationError("required_config", "must be a list of keys, not one string")
        self.required_config = tuple(required_config)
        for wanted in self.required_config:
            # Duck-typed like ``config``: lifecycle does not import buttress.config.
            if not isinstance(wanted, str) and not isinstance(getattr(wanted, "key", None), str):
                raise ValidationError(
                    "required_config", "each item must be a key (str) or a config Setting"
                )
        if self.required_config and config is None:
            raise ValidationError("config", "required_config needs a config store")
        self.mode = _mode(mode)
        self._environ = environ
        self.check_timeout = check_timeout

    def __repr__(self) -> str:
        # the DSN may hold a password: never print it
        return f"StartupValidator(mode={self.mode!r}, checks={len(self.custom_checks)})"

    async def run(self) -> StartupReport:
        """Run every check and collect the outcome; never raises for a failed check."""
        checks: dict[str, StartupCheck] = {}
        environ = os.environ if self._environ is None else self._environ
        for var in self.required_env:
            started = time.perf_counter()
            error = check_env(var, environ) if isinstance(var, EnvVar) else var.problem(environ)
            checks[f"env:{var.name}"] = StartupCheck(
                f"env:{var.name}",
                "passed" if error is None else "failed",
                () if error is None else (error,),
                duration_ms=(time.perf_counter() - started) * 1000,
            )

        backend, owned = None, False
        if self.dsn is not None or self.backend is not None:
            backend, owned, outcome = await self._reach_backend()
            checks["backend"] = outcome
        try:
            pending: list[tuple[str, Callable[[], Awaitable[StartupCheck]]]] = []
            needs_backend = {
                "tables": bool(self.required_tables),
                "schema": self.schema is not None,
                "migrations": self.migrations_dir is not None,
            }
            for name, wanted in needs_backend.items():
                if not wanted:
                    continue
                if backend is None and "backend" in checks:
                    # The backend error already says what is wrong; do not repeat it.
                    checks[name] = StartupCheck(
                        name, "skipped", note="skipped: the backend is unreachable"
                    )
                    continue
                if backend is None:
                    line = f"{name}: cannot be checked without a database; pass dsn= or backend="
                    checks[name] = StartupCheck(name, "failed", (line,))
                    continue
                pending.append((name, self._backend_check(name, backend)))
            if self.required_config:
                pending.append(("config", self._check_config))
            for name, fn in self.custom_checks:
                pending.append((name, custom(name, fn)))
            outcomes = await asyncio.gather(
                *(self._timed(name, factory) for name, factory in pending)
            )
            for outcome in outcomes:
                checks[outcome.name] = outcome
        finally:
            if owned and backend is not None:
                close = getattr(backend, "close", None)
                if callable(close):
                    try:
                        await asyncio.wait_for(close(), self.check_timeout)
                    except Exception as exc:  # noqa: BLE001 - closing must not hide the report
                        _log.warning("startup.close_failed", error=safe_error_message(exc))
        errors = tuple(line for c in checks.values() for line in c.errors)
        warnings = tuple(line for c in checks.values() for line in c.warnings)
        return StartupReport(not errors, errors, warnings, checks, self.mode)

    async def enforce(self) -> StartupReport:
        """``run()``, then apply the mode: production raises ``StartupError`` on
        any error, development logs each problem as a warning and returns."""
        report = await self.run()
        for line in report.warnings:
            _log.warning("startup.warning", problem=line)
        if report.success:
            _log.info("startup.validated", checks=len(report.checks))
            return report
        if self.mode == "production":
            for line in report.errors:
                _log.error("startup.problem", problem=line)
            raise StartupError(report)
        for line in report.errors:
            _log.warning("startup.problem", problem=line, mode="development")
        return report

    async def _timed(
        self, name: str, factory: Callable[[], Awaitable[StartupCheck]]
    ) -> StartupCheck:
        started = time.perf_counter()
        try:
            outcome = await asyncio.wait_for(factory(), self.check_timeout)
        except TimeoutError:
            outcome = StartupCheck(
                name,
                "failed",
                (
                    f"{name}: did not finish within {self.check_timeout:g} s; "
                    "check that what it depends on is reachable",
                ),
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes a line, not an abort
            outcome = StartupCheck(name, "failed", (f"{name}: {safe_error_message(exc)}",))
        return attrs.evolve(outcome, duration_ms=(time.perf_counter() - started) * 1000)

    async def _reach_backend(self) -> tuple[object | None, bool, StartupCheck]:
        started = time.perf_counter()

        def done(status: CheckStatus, *errors: str) -> StartupCheck:
            return StartupCheck(
                "backend", status, errors, duration_ms=(time.perf_counter() - started) * 1000
            )

        if self.backend is not None:
            try:
                await asyncio.wait_for(ping(self.backend), self.check_timeout)
            except Exception as exc:  # noqa: BLE001 - an unreachable backend is one error line
                return None, False, done("failed", unreachable("the backend", exc))
            return self.backend, False, done("passed")

        assert self.dsn is not None
        shown = redact(self.dsn)
        try:
            backends = importlib.import_module("buttress.backends")
            backend: object = await asyncio.wait_for(
                backends.open_backend(self.dsn), self.check_timeout
            )
        except ValidationError as exc:
            return None, False, done("failed", f"dsn {shown} is invalid: {exc}; fix BUTTRESS_DSN")
        except ImportError as exc:
            return None, False, done("failed", f"backend for {shown}: {safe_error_message(exc)}")
        except Exception as exc:  # noqa: BLE001 - unreachable is a line, not a crash
            return None, False, done("failed", unreachable(shown, exc))
        try:
            await asyncio.wait_for(ping(backend), self.check_timeout)
        except Exception as exc:  # noqa: BLE001 - same: one line
            close = getattr(backend, "close", None)
            if callable(close):
                await close()
            return None, False, done("failed", unreachable(shown, exc))
        return backend, True, done("passed")

    def _backend_check(self, name: str, backend: object) -> Callable[[], Awaitable[StartupCheck]]:
        if name == "tables":
            return lambda: check_tables(backend, self.required_tables)
        if name == "schema":
            return lambda: check_schema(backend, self.schema)
        return lambda: check_migrations(backend, self.migrations_dir)

    async def _check_config(self) -> StartupCheck:
        get_entry = getattr(self.config, "get_entry", None)
        read = getattr(self.config, "read", None)
        if not callable(get_entry):
            return StartupCheck("config", "failed", ("config: the store has no get_entry()",))
        errors = []
        for item in self.required_config:
            if isinstance(item, str):
                if await get_entry(item) is None:
                    errors.append(_missing_config(item))
                continue
            key = item.key
            if not callable(read):
                errors.append(f"config: the store has no read() for Setting {key!r}")
                continue
            # ``read`` is what the service will call: a required Setting without a value
            # and a value of the wrong type both fail there, so both fail here.
            from buttress.config import ConfigMissingError, ConfigTypeError

            try:
                await read(item)
            except ConfigMissingError:
                errors.append(_missing_config(key))
            except ConfigTypeError as exc:  # names the key and the rule, never the value
                errors.append(f"{exc}; fix it with `buttress config set {key} ...`")
        return StartupCheck("config", "failed" if errors else "passed", tuple(errors))


def _missing_config(key: str) -> str:
    return f"config key {key!r} is missing; set it with `buttress config set {key} ...`"
