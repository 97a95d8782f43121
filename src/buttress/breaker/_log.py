"""The breaker package's structlog logger (``component="breaker"``)."""

from __future__ import annotations

from buttress.log import get_logger

__all__ = ["logger"]

logger = get_logger("breaker")
