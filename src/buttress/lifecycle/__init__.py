"""Process lifecycle: validate before start-up, shut down gracefully.

``StartupValidator`` collects every start-up problem before the service takes
traffic; ``GracefulShutdown`` drains and releases resources within a deadline.
"""

from buttress.lifecycle._checks import StartupCheckFn
from buttress.lifecycle.env import (
    EnvKind,
    EnvVar,
    check_env,
    load_required_env,
    parse_bool,
    parse_env_spec,
)
from buttress.lifecycle.report import (
    StartupCheck,
    StartupError,
    StartupReport,
    render_startup_text,
)
from buttress.lifecycle.shutdown import (
    GracefulShutdown,
    HookOutcome,
    ReadinessFlag,
    ShutdownHook,
    ShutdownReport,
)
from buttress.lifecycle.startup import StartupValidator

__all__ = [
    "EnvKind",
    "EnvVar",
    "GracefulShutdown",
    "HookOutcome",
    "ReadinessFlag",
    "ShutdownHook",
    "ShutdownReport",
    "StartupCheck",
    "StartupCheckFn",
    "StartupError",
    "StartupReport",
    "StartupValidator",
    "check_env",
    "load_required_env",
    "parse_bool",
    "parse_env_spec",
    "render_startup_text",
]
