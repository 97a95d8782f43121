"""Error taxonomy: classify, ErrorContext, ContextualError, capture and with_error_handling."""

from __future__ import annotations

import asyncio
import copy
import functools
import pickle
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg.exceptions as pg
import pytest
import redis.exceptions as rx
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from buttress import Err, Ok, UnwrapError
from buttress.errors import (
    UNKNOWN,
    BackendError,
    BackendUnavailableError,
    ButtressError,
    Classification,
    ContextualError,
    ErrorCategory,
    ErrorContext,
    InvalidDSNError,
    MissingDependencyError,
    Severity,
    ValidationError,
    capture,
    classify,
    register_classification,
    user_message_for,
    with_error_handling,
)

C = ErrorCategory
S = Severity


def test_taxonomy_members() -> None:
    assert [c.name for c in ErrorCategory] == [
        "DATABASE",
        "VALIDATION",
        "AUTHENTICATION",
        "NETWORK",
        "TIMEOUT",
        "RATE_LIMIT",
        "BUSINESS_LOGIC",
        "SYSTEM",
    ]
    assert [s.name for s in Severity] == ["LOW", "MEDIUM", "HIGH", "CRITICAL"]
    assert [s.rank for s in Severity] == [0, 1, 2, 3]


# ErrorContext.


def test_error_context_is_frozen_and_copies_attributes() -> None:
    attrs_in = {"order_id": 7}
    ctx = ErrorContext("billing", "charge", attrs_in)
    attrs_in["order_id"] = 8
    assert ctx.attributes == {"order_id": 7}
    with pytest.raises(AttributeError):
        ctx.component = "x"  # type: ignore[misc]  # frozen is the point
    with pytest.raises(TypeError):
        ctx.attributes["new"] = 1  # type: ignore[index]  # read-only mapping is the point


def test_error_context_repr_masks_sensitive_attributes() -> None:
    ctx = ErrorContext("billing", "charge", {"api_key": "k-12345", "dsn": "redis://:pw-777@h"})
    assert "k-12345" not in repr(ctx)
    assert "pw-777" not in repr(ctx)
    assert "billing" in repr(ctx)


def test_error_context_equality_and_hash() -> None:
    a = ErrorContext("billing", "charge", {"items": [1, 2]})
    b = ErrorContext("billing", "charge", {"items": [1, 2]})
    assert a == b
    assert hash(a) == hash(b)
    assert a != ErrorContext("billing", "charge", {"items": [1]})
    assert ErrorContext("billing").operation is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"component": ""}, "component"),
        ({"component": 3}, "component"),
        ({"component": "c", "operation": ""}, "operation"),
        ({"component": "c", "attributes": [1]}, "attributes"),
        ({"component": "c", "attributes": {1: "x"}}, "attributes"),
    ],
)
def test_error_context_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ErrorContext(**kwargs)  # type: ignore[arg-type]  # bad input is the point
    assert info.value.field == field


# classify.


def _rule(category: ErrorCategory, severity: Severity, retryable: bool) -> Classification:
    return Classification(category, severity, retryable)


BUILTIN_CASES: list[tuple[BaseException, ErrorCategory, bool]] = [
    (TimeoutError(), C.TIMEOUT, True),
    (ConnectionError(), C.NETWORK, True),
    (ConnectionRefusedError(), C.NETWORK, True),
    (ConnectionResetError(), C.NETWORK, True),
    (BrokenPipeError(), C.NETWORK, True),
    (OSError(), C.SYSTEM, False),
    (FileNotFoundError(), C.SYSTEM, False),
    (PermissionError(), C.SYSTEM, False),
    (ValueError(), C.VALIDATION, False),
    (TypeError(), C.VALIDATION, False),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"), C.VALIDATION, False),
    (MemoryError(), C.SYSTEM, False),
    (KeyError(), C.SYSTEM, False),
    (RuntimeError(), C.SYSTEM, False),
]


@pytest.mark.parametrize(("exc", "category", "retryable"), BUILTIN_CASES)
def test_classify_builtins(exc: BaseException, category: ErrorCategory, retryable: bool) -> None:
    found = classify(exc)
    assert (found.category, found.retryable) == (category, retryable)


def test_unknown_exception_is_system_high_not_retryable() -> None:
    class Strange(Exception):
        pass

    assert classify(Strange()) == UNKNOWN == _rule(C.SYSTEM, S.HIGH, False)
    assert classify(KeyboardInterrupt()) == UNKNOWN


@pytest.mark.parametrize(
    ("exc", "category", "retryable"),
    [
        (ValidationError("limit", "must be > 0"), C.VALIDATION, False),
        (InvalidDSNError("unknown scheme"), C.VALIDATION, False),
        (BackendUnavailableError("down"), C.NETWORK, True),
        (BackendError("failed"), C.DATABASE, False),
        (MissingDependencyError("asyncpg", "postgres"), C.SYSTEM, False),
        (ButtressError("x"), C.SYSTEM, False),
    ],
)
def test_classify_buttress_errors(
    exc: BaseException, category: ErrorCategory, retryable: bool
) -> None:
    found = classify(exc)
    assert (found.category, found.retryable) == (category, retryable)


@pytest.fixture
def sqlite_pair(tmp_path: Path) -> Iterator[tuple[sqlite3.Connection, sqlite3.Connection]]:
    path = tmp_path / "locked.db"
    first = sqlite3.connect(path, isolation_level=None)
    second = sqlite3.connect(path, isolation_level=None, timeout=0)
    first.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    yield first, second
    first.close()
    second.close()


def test_classify_real_sqlite_lock_is_retryable(
    sqlite_pair: tuple[sqlite3.Connection, sqlite3.Connection],
) -> None:
    first, second = sqlite_pair
    first.execute("BEGIN EXCLUSIVE")
    with pytest.raises(sqlite3.OperationalError) as info:
        second.execute("INSERT INTO t VALUES (1)")
    assert classify(info.value) == _rule(C.DATABASE, S.MEDIUM, True)
    first.execute("ROLLBACK")


def test_classify_real_sqlite_integrity_and_syntax(
    sqlite_pair: tuple[sqlite3.Connection, sqlite3.Connection],
) -> None:
    first, _ = sqlite_pair
    first.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.IntegrityError) as integrity:
        first.execute("INSERT INTO t VALUES (1)")
    assert classify(integrity.value) == _rule(C.VALIDATION, S.LOW, False)
    with pytest.raises(sqlite3.OperationalError) as syntax:
        first.execute("SELEC 1")
    assert classify(syntax.value) == _rule(C.DATABASE, S.HIGH, False)


def test_classify_sqlite_by_message_when_no_code() -> None:
    assert classify(sqlite3.OperationalError("database is locked")).retryable is True
    assert classify(sqlite3.OperationalError("no such table: t")).retryable is False
    assert classify(sqlite3.ProgrammingError()).category is C.DATABASE


ASYNCPG_CASES: list[tuple[BaseException, ErrorCategory, bool]] = [
    (pg.SerializationError(), C.DATABASE, True),
    (pg.DeadlockDetectedError(), C.DATABASE, True),
    (pg.ConnectionDoesNotExistError(), C.NETWORK, True),
    (pg.ConnectionFailureError(), C.NETWORK, True),
    (pg.CannotConnectNowError(), C.NETWORK, True),
    (pg.TooManyConnectionsError(), C.NETWORK, True),
    (pg.AdminShutdownError(), C.NETWORK, True),
    (pg.InvalidPasswordError(), C.AUTHENTICATION, False),
    (pg.InvalidAuthorizationSpecificationError(), C.AUTHENTICATION, False),
    (pg.InsufficientPrivilegeError(), C.AUTHENTICATION, False),
    (pg.QueryCanceledError(), C.TIMEOUT, True),
    (pg.UniqueViolationError(), C.VALIDATION, False),
    (pg.ForeignKeyViolationError(), C.VALIDATION, False),
    (pg.NotNullViolationError(), C.VALIDATION, False),
    (pg.InvalidTextRepresentationError(), C.VALIDATION, False),
    (pg.LockNotAvailableError(), C.DATABASE, True),
    (pg.PostgresSyntaxError(), C.DATABASE, False),
    (pg.UndefinedTableError(), C.DATABASE, False),
    (pg.InvalidCatalogNameError(), C.SYSTEM, False),
    (pg.DiskFullError(), C.DATABASE, False),
    (pg.RaiseError(), C.BUSINESS_LOGIC, False),
    (pg.InternalServerError(), C.DATABASE, False),
    (pg.DataError(), C.VALIDATION, False),
    (pg.InterfaceError("another operation is in progress"), C.DATABASE, False),
    (pg.OutdatedSchemaCacheError("stale"), C.DATABASE, True),
]


@pytest.mark.parametrize(("exc", "category", "retryable"), ASYNCPG_CASES)
def test_classify_asyncpg(exc: BaseException, category: ErrorCategory, retryable: bool) -> None:
    found = classify(exc)
    assert (found.category, found.retryable) == (category, retryable)


@pytest.mark.parametrize(
    ("sqlstate", "category", "retryable"),
    [
        ("08006", C.NETWORK, True),
        ("40001", C.DATABASE, True),
        ("53200", C.DATABASE, True),
        ("57P05", C.DATABASE, True),
        ("23505", C.VALIDATION, False),
        ("28P01", C.AUTHENTICATION, False),
        ("XX001", C.DATABASE, False),
        ("99999", C.DATABASE, False),
        (None, C.DATABASE, False),
    ],
)
def test_classify_unknown_postgres_error_by_sqlstate_class(
    sqlstate: str | None, category: ErrorCategory, retryable: bool
) -> None:
    exc = pg.UnknownPostgresError("server said no")
    exc.sqlstate = sqlstate  # type: ignore[misc,assignment]  # asyncpg sets it per instance for unknown codes
    found = classify(exc)
    assert (found.category, found.retryable) == (category, retryable)


REDIS_CASES: list[tuple[BaseException, ErrorCategory, bool]] = [
    (rx.ConnectionError(), C.NETWORK, True),
    (rx.TimeoutError(), C.TIMEOUT, True),
    (rx.BusyLoadingError(), C.NETWORK, True),
    (rx.MaxConnectionsError(), C.NETWORK, True),
    (rx.AuthenticationError(), C.AUTHENTICATION, False),
    (rx.AuthorizationError(), C.AUTHENTICATION, False),
    (rx.NoPermissionError(), C.AUTHENTICATION, False),
    (rx.ReadOnlyError(), C.DATABASE, True),
    (rx.TryAgainError(), C.DATABASE, True),
    (rx.WatchError(), C.DATABASE, True),
    (rx.ClusterDownError("CLUSTERDOWN"), C.NETWORK, True),
    (rx.OutOfMemoryError(), C.DATABASE, False),
    (rx.DataError(), C.VALIDATION, False),
    (rx.ResponseError("WRONGTYPE"), C.DATABASE, False),
    (rx.LockError(), C.DATABASE, False),
    (rx.RedisError(), C.DATABASE, False),
]


@pytest.mark.parametrize(("exc", "category", "retryable"), REDIS_CASES)
def test_classify_redis(exc: BaseException, category: ErrorCategory, retryable: bool) -> None:
    found = classify(exc)
    assert (found.category, found.retryable) == (category, retryable)


def test_classify_recognises_drivers_by_name_only() -> None:
    # A class that merely *looks* like the redis one is classified the same:
    # nothing is imported or isinstance-checked against the real driver.
    lookalike = type("BusyLoadingError", (Exception,), {"__module__": "redis.exceptions"})
    assert classify(lookalike()) == classify(rx.BusyLoadingError())


def test_classify_does_not_import_drivers() -> None:
    code = (
        "import sys, sqlite3\n"
        "from buttress.errors import classify\n"
        "for exc in (TimeoutError(), sqlite3.OperationalError('database is locked'),"
        " KeyError(), OSError()):\n"
        "    classify(exc)\n"
        "bad = [m for m in ('asyncpg', 'redis') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_register_classification_applies_to_subclasses_and_is_validated() -> None:
    class PaymentDeclined(Exception):
        pass

    class CardExpired(PaymentDeclined):
        pass

    rule = _rule(C.BUSINESS_LOGIC, S.LOW, False)
    assert classify(CardExpired()) == UNKNOWN  # cached before registration
    register_classification(PaymentDeclined, rule)
    assert classify(PaymentDeclined()) == rule
    assert classify(CardExpired()) == rule
    with pytest.raises(ValidationError):
        register_classification(int, rule)  # type: ignore[arg-type]  # bad input is the point
    with pytest.raises(ValidationError):
        register_classification(PaymentDeclined, "x")  # type: ignore[arg-type]  # same


known_exceptions = st.sampled_from(
    [e for e, _, _ in (*BUILTIN_CASES, *ASYNCPG_CASES, *REDIS_CASES)]
    + [sqlite3.IntegrityError("x"), Exception("x"), BackendUnavailableError("x")]
)


@given(known_exceptions, st.text(max_size=30))
def test_classify_depends_on_type_not_message(exc: BaseException, message: str) -> None:
    before = classify(exc)
    reworded = copy.copy(exc)
    reworded.args = (message,)
    assert classify(reworded) == before
    assert isinstance(before, Classification)


# ContextualError and capture.

SECRET_MESSAGE = (
    "connection to postgresql://app:s3cr3t-pw@db.internal/prod failed while running "
    "INSERT INTO users (email) VALUES ('alice@example.com')"
)


def _captured_error(exc: BaseException, **kwargs: object) -> ContextualError:
    result = capture(exc, **kwargs)  # type: ignore[arg-type]  # kwargs are capture's keywords
    assert isinstance(result, Err)
    return result.error


def test_capture_wraps_classifies_and_chains() -> None:
    original = BackendUnavailableError(SECRET_MESSAGE)
    with capture_logs():
        error = _captured_error(original, component="billing", operation="charge")
    assert error.__cause__ is original
    assert error.category is C.NETWORK
    assert error.severity is S.HIGH
    assert error.retryable is True
    assert error.context == ErrorContext("billing", "charge")
    assert error.classification == classify(original)
    assert error.user_message == user_message_for(C.NETWORK, retryable=True)
    assert error.error_type == "buttress.errors.BackendUnavailableError"
    assert isinstance(error, ButtressError)


def test_contextual_error_texts_never_carry_the_original_message() -> None:
    with capture_logs() as logs:
        error = _captured_error(
            sqlite3.OperationalError(SECRET_MESSAGE), component="users", operation="create"
        )
    for text in (str(error), repr(error), error.user_message, repr(logs)):
        for fragment in ("s3cr3t-pw", "INSERT INTO", "alice@example.com", "postgresql://"):
            assert fragment not in text
    assert str(error) == "database error in users.create (sqlite3.OperationalError)"


@given(st.sampled_from(list(ErrorCategory)), st.booleans())
def test_user_messages_are_fixed_per_category(category: ErrorCategory, retryable: bool) -> None:
    message = user_message_for(category, retryable=retryable)
    assert message
    assert message.endswith(".")


# The marker keeps a generated message from coinciding with our own fixed text.
@given(st.text(max_size=40).map(lambda text: f"\N{SECTION SIGN}{text}"))
def test_no_exception_text_reaches_str_or_user_message(message: str) -> None:
    with capture_logs() as logs:
        error = _captured_error(ValueError(message), component="svc")
    known = {user_message_for(c, retryable=r) for c in ErrorCategory for r in (True, False)}
    assert error.user_message in known
    assert message not in str(error)
    assert message not in repr(error)
    assert all(message not in repr(event) for event in logs)


def test_capture_logs_once_with_context_and_safe_fields() -> None:
    with capture_logs() as logs:
        error = _captured_error(
            pg.UniqueViolationError(SECRET_MESSAGE),
            context=ErrorContext("users", "create", {"request_id": "r-1"}),
        )
    assert len(logs) == 1
    event = logs[0]
    assert event == {
        "event": "error_captured",
        "log_level": "info",
        "component": "users",
        "operation": "create",
        "category": "validation",
        "severity": "low",
        "retryable": False,
        "error_type": "asyncpg.exceptions.UniqueViolationError",
        "error_code": "23505",
        "attributes": {"request_id": "r-1"},
    }
    assert error.error_code == "23505"


@pytest.mark.parametrize(
    ("exc", "level"),
    [
        (ValueError("v"), "info"),
        (TimeoutError(), "warning"),
        (KeyError("k"), "error"),
        (MemoryError(), "critical"),
    ],
)
def test_capture_log_level_follows_severity(exc: BaseException, level: str) -> None:
    with capture_logs() as logs:
        capture(exc, component="svc")
    assert [e["log_level"] for e in logs] == [level]


def test_capture_masks_sensitive_attributes_in_the_log() -> None:
    with capture_logs() as logs:
        capture(KeyError("k"), component="svc", attributes={"api_key": "abcd-1234", "n": 1})
    assert logs[0]["attributes"] == {"api_key": "***", "n": 1}


def test_capture_does_not_wrap_or_log_twice() -> None:
    with capture_logs() as logs:
        first = _captured_error(TimeoutError(), component="svc")
        again = capture(first, component="other")
        try:
            Err(first).unwrap()
        except UnwrapError as unwrap_error:
            via_unwrap = capture(unwrap_error)
    assert again == Err(first)
    assert via_unwrap == Err(first)
    assert len(logs) == 1


def test_capture_overrides_context_fields() -> None:
    base = ErrorContext("billing", "charge", {"a": 1})
    with capture_logs():
        error = _captured_error(
            ValueError("x"), context=base, operation="refund", attributes={"b": 2}
        )
    assert error.context == ErrorContext("billing", "refund", {"a": 1, "b": 2})
    with capture_logs():
        assert _captured_error(ValueError("x")).context.component == "unknown"


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        (("not an exception",), {}, "exc"),
        ((ValueError(),), {"context": "billing"}, "context"),
        ((ValueError(),), {"component": ""}, "component"),
    ],
)
def test_capture_refuses_bad_input(
    args: tuple[object, ...], kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        capture(*args, **kwargs)  # type: ignore[arg-type]  # bad input is the point
    assert info.value.field == field


def test_contextual_error_pickles() -> None:
    with capture_logs():
        error = _captured_error(TimeoutError(), component="svc", attributes={"n": 1})
    restored = pickle.loads(pickle.dumps(error))
    assert isinstance(restored, ContextualError)
    assert (restored.category, restored.severity, restored.retryable) == (
        C.TIMEOUT,
        S.MEDIUM,
        True,
    )
    assert restored.context == error.context
    assert str(restored) == str(error)


# with_error_handling.


handle_billing = with_error_handling(component="billing", catch=(ValueError, OSError))


@handle_billing
def charge(amount: int) -> int:
    """Charge an amount."""
    if amount < 0:
        raise ValueError("negative amount")
    if amount == 0:
        raise KeyError("zero")
    return amount


@handle_billing
async def acharge(amount: int) -> int:
    """Charge an amount, asynchronously."""
    await asyncio.sleep(0)
    if amount < 0:
        raise ConnectionRefusedError("refused")
    return amount


def test_decorator_sync() -> None:
    assert charge(5) == Ok(5)
    with capture_logs() as logs:
        result = charge(-1)
    assert isinstance(result, Err)
    assert result.error.category is C.VALIDATION
    assert result.error.context == ErrorContext("billing", "charge")
    assert isinstance(result.error.__cause__, ValueError)
    assert len(logs) == 1
    with pytest.raises(KeyError):
        charge(0)


async def test_decorator_async() -> None:
    assert await acharge(5) == Ok(5)
    with capture_logs() as logs:
        result = await acharge(-1)
    assert isinstance(result, Err)
    assert result.error.category is C.NETWORK
    assert result.error.retryable is True
    assert result.error.context.operation == "acharge"
    assert len(logs) == 1


def test_decorator_keeps_metadata() -> None:
    assert charge.__name__ == "charge"
    assert charge.__doc__ == "Charge an amount."
    assert acharge.__name__ == "acharge"
    assert asyncio.iscoroutinefunction(acharge)


async def test_cancellation_and_base_exceptions_propagate() -> None:
    handler = with_error_handling(component="svc")

    async def cancelled() -> None:
        raise asyncio.CancelledError

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(asyncio.CancelledError):
        await handler.acall(cancelled)
    with pytest.raises(KeyboardInterrupt):
        handler.call(interrupted)


async def test_call_and_acall_default_to_function_names() -> None:
    handler = with_error_handling()

    def divide(a: int, b: int) -> float:
        return a / b

    async def adivide(a: int, b: int) -> float:
        return a / b

    assert handler.call(divide, 1, 2) == Ok(0.5)
    assert await handler.acall(adivide, 1, b=4) == Ok(0.25)
    with capture_logs():
        failed = handler.call(divide, 1, 0)
    assert isinstance(failed, Err)
    assert failed.error.context.component == __name__
    assert failed.error.context.operation.endswith("divide")  # type: ignore[union-attr]  # set


def test_with_error_handling_uses_given_context() -> None:
    ctx = ErrorContext("payments", "capture", {"tenant": "t1"})

    @with_error_handling(context=ctx)
    def fail() -> None:
        raise TimeoutError

    with capture_logs():
        result = fail()
    assert isinstance(result, Err)
    assert result.error.context == ctx


def test_with_error_handling_on_partial() -> None:
    def add(a: int, b: int) -> int:
        return a + b

    handler = with_error_handling(component="svc")
    assert handler.call(functools.partial(add, 1), 2) == Ok(3)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"catch": ()}, "catch"),
        ({"catch": ValueError}, "catch"),
        ({"catch": (ValueError, int)}, "catch"),
        ({"catch": (KeyboardInterrupt,)}, "catch"),
        ({"component": ""}, "component"),
        ({"operation": 3}, "operation"),
        ({"context": {"component": "x"}}, "context"),
    ],
)
def test_with_error_handling_refuses_bad_arguments(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        with_error_handling(**kwargs)  # type: ignore[arg-type]  # bad input is the point
    assert info.value.field == field


def test_decorating_a_non_callable_is_refused() -> None:
    with pytest.raises(ValidationError):
        with_error_handling()(42)  # type: ignore[call-overload]  # bad input is the point
