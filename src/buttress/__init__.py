"""buttress: typed reliability parts for Python services.

This module only re-exports the public names, each imported on first attribute
access (PEP 562): ``import buttress`` loads nothing but this module, so importing
``buttress.config`` costs only what config needs. Optional drivers (asyncpg,
redis) and adapter frameworks load only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from buttress._connect import connect
    from buttress._version import __version__
    from buttress.backends import Backend, MissingTableError, redact_dsn
    from buttress.breaker import (
        BreakerState,
        BreakerStats,
        CircuitBreaker,
        CircuitOpenError,
        breakers,
    )
    from buttress.clock import Clock, SystemClock
    from buttress.config import ConfigEntry, ConfigStore, Setting
    from buttress.db import ConnectionLostError, Database, DatabaseStats, database_check
    from buttress.deploy import DeliveryMetrics, Deployment, DeploymentLog
    from buttress.errors import (
        BackendError,
        BackendUnavailableError,
        ButtressError,
        Classification,
        ContextualError,
        ErrorCategory,
        ErrorContext,
        ErrorHandler,
        InvalidDSNError,
        MissingDependencyError,
        SchemaMissingError,
        Severity,
        UnsupportedBackendError,
        ValidationError,
        capture,
        classify,
        register_classification,
        with_error_handling,
    )
    from buttress.flags import FeatureFlags, Flag, FlagContext, FlagEvaluation
    from buttress.health import ComponentStatus, HealthRegistry, HealthReport, Status, aggregate
    from buttress.lifecycle import GracefulShutdown, StartupReport, StartupValidator
    from buttress.log import configure_logging, get_logger, redact, register_secret
    from buttress.migrations import Migrator
    from buttress.monitoring import (
        AlertLevel,
        Anomaly,
        DropRule,
        FlatRule,
        HealthHistory,
        HealthRecord,
        SpikeRule,
    )
    from buttress.monitoring.errors import ErrorRateRule, ErrorStats
    from buttress.policies import (
        Pipeline,
        RetryBudget,
        adaptive_limit,
        bulkhead,
        fallback,
        retry,
        timeout,
    )
    from buttress.ratelimit import (
        Decision,
        Rate,
        RateLimiter,
        RateLimitExceeded,
        ahit_all,
        hit_all,
    )
    from buttress.result import Err, Ok, Result, UnwrapError, as_result
    from buttress.schema import Column, Schema, SchemaReport, SchemaValidator, Table
    from buttress.schema.audit import AuditReport, SecurityAudit, TableSecurity
    from buttress.schema.integrity import (
        ExpectRelation,
        ExpectUnique,
        IntegrityChecker,
        IntegrityReport,
    )

_LAZY: dict[str, str] = {
    "__version__": "buttress._version",
    "Clock": "buttress.clock",
    "SystemClock": "buttress.clock",
    "BackendError": "buttress.errors",
    "BackendUnavailableError": "buttress.errors",
    "ButtressError": "buttress.errors",
    "Classification": "buttress.errors",
    "ContextualError": "buttress.errors",
    "ErrorCategory": "buttress.errors",
    "ErrorContext": "buttress.errors",
    "ErrorHandler": "buttress.errors",
    "InvalidDSNError": "buttress.errors",
    "MissingDependencyError": "buttress.errors",
    "SchemaMissingError": "buttress.errors",
    "Severity": "buttress.errors",
    "UnsupportedBackendError": "buttress.errors",
    "ValidationError": "buttress.errors",
    "capture": "buttress.errors",
    "classify": "buttress.errors",
    "register_classification": "buttress.errors",
    "with_error_handling": "buttress.errors",
    "configure_logging": "buttress.log",
    "get_logger": "buttress.log",
    "redact": "buttress.log",
    "register_secret": "buttress.log",
    "Err": "buttress.result",
    "Ok": "buttress.result",
    "Result": "buttress.result",
    "UnwrapError": "buttress.result",
    "as_result": "buttress.result",
    "Backend": "buttress.backends",
    "connect": "buttress._connect",
    "redact_dsn": "buttress.backends",
    "ConfigEntry": "buttress.config",
    "ConfigStore": "buttress.config",
    "Setting": "buttress.config",
    "MissingTableError": "buttress.backends",
    "DeliveryMetrics": "buttress.deploy",
    "Deployment": "buttress.deploy",
    "DeploymentLog": "buttress.deploy",
    "FeatureFlags": "buttress.flags",
    "Flag": "buttress.flags",
    "FlagContext": "buttress.flags",
    "FlagEvaluation": "buttress.flags",
    "ComponentStatus": "buttress.health",
    "HealthRegistry": "buttress.health",
    "HealthReport": "buttress.health",
    "Status": "buttress.health",
    "aggregate": "buttress.health",
    "GracefulShutdown": "buttress.lifecycle",
    "StartupReport": "buttress.lifecycle",
    "StartupValidator": "buttress.lifecycle",
    "Migrator": "buttress.migrations",
    "Database": "buttress.db",
    "DatabaseStats": "buttress.db",
    "database_check": "buttress.db",
    "ConnectionLostError": "buttress.db",
    "IntegrityChecker": "buttress.schema.integrity",
    "ExpectUnique": "buttress.schema.integrity",
    "ExpectRelation": "buttress.schema.integrity",
    "IntegrityReport": "buttress.schema.integrity",
    "SecurityAudit": "buttress.schema.audit",
    "TableSecurity": "buttress.schema.audit",
    "AuditReport": "buttress.schema.audit",
    "ErrorRateRule": "buttress.monitoring.errors",
    "ErrorStats": "buttress.monitoring.errors",
    "Decision": "buttress.ratelimit",
    "Rate": "buttress.ratelimit",
    "RateLimiter": "buttress.ratelimit",
    "RateLimitExceeded": "buttress.ratelimit",
    "ahit_all": "buttress.ratelimit",
    "hit_all": "buttress.ratelimit",
    "AlertLevel": "buttress.monitoring",
    "Anomaly": "buttress.monitoring",
    "DropRule": "buttress.monitoring",
    "FlatRule": "buttress.monitoring",
    "HealthHistory": "buttress.monitoring",
    "HealthRecord": "buttress.monitoring",
    "SpikeRule": "buttress.monitoring",
    "BreakerState": "buttress.breaker",
    "BreakerStats": "buttress.breaker",
    "CircuitBreaker": "buttress.breaker",
    "CircuitOpenError": "buttress.breaker",
    "breakers": "buttress.breaker",
    "Pipeline": "buttress.policies",
    "RetryBudget": "buttress.policies",
    "adaptive_limit": "buttress.policies",
    "bulkhead": "buttress.policies",
    "fallback": "buttress.policies",
    "retry": "buttress.policies",
    "timeout": "buttress.policies",
    "Column": "buttress.schema",
    "Schema": "buttress.schema",
    "SchemaReport": "buttress.schema",
    "SchemaValidator": "buttress.schema",
    "Table": "buttress.schema",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'buttress' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "AlertLevel",
    "Anomaly",
    "AuditReport",
    "Backend",
    "BackendError",
    "BackendUnavailableError",
    "BreakerState",
    "BreakerStats",
    "ButtressError",
    "CircuitBreaker",
    "CircuitOpenError",
    "Classification",
    "Clock",
    "Column",
    "ComponentStatus",
    "ConfigEntry",
    "ConfigStore",
    "ConnectionLostError",
    "ContextualError",
    "Database",
    "DatabaseStats",
    "Decision",
    "DeliveryMetrics",
    "Deployment",
    "DeploymentLog",
    "DropRule",
    "Err",
    "ErrorCategory",
    "ErrorContext",
    "ErrorHandler",
    "ErrorRateRule",
    "ErrorStats",
    "ExpectRelation",
    "ExpectUnique",
    "FeatureFlags",
    "Flag",
    "FlagContext",
    "FlagEvaluation",
    "FlatRule",
    "GracefulShutdown",
    "HealthHistory",
    "HealthRecord",
    "HealthRegistry",
    "HealthReport",
    "IntegrityChecker",
    "IntegrityReport",
    "InvalidDSNError",
    "Migrator",
    "MissingDependencyError",
    "MissingTableError",
    "Ok",
    "Pipeline",
    "Rate",
    "RateLimitExceeded",
    "RateLimiter",
    "Result",
    "RetryBudget",
    "Schema",
    "SchemaMissingError",
    "SchemaReport",
    "SchemaValidator",
    "SecurityAudit",
    "Setting",
    "Severity",
    "SpikeRule",
    "StartupReport",
    "StartupValidator",
    "Status",
    "SystemClock",
    "Table",
    "TableSecurity",
    "UnsupportedBackendError",
    "UnwrapError",
    "ValidationError",
    "__version__",
    "adaptive_limit",
    "aggregate",
    "ahit_all",
    "as_result",
    "breakers",
    "bulkhead",
    "capture",
    "classify",
    "configure_logging",
    "connect",
    "database_check",
    "fallback",
    "get_logger",
    "hit_all",
    "redact",
    "redact_dsn",
    "register_classification",
    "register_secret",
    "retry",
    "timeout",
    "with_error_handling",
]
