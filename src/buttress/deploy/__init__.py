"""Deployments: what version runs where, its rollbacks and failures, and delivery metrics.

``DeploymentLog`` checks and logs; stores (memory, SQLite, PostgreSQL) load
and save atomically; ``delivery_metrics`` is the pure DORA computation.
"""

from buttress.deploy._core import delivery_metrics
from buttress.deploy._service import DeploymentLog
from buttress.deploy._values import (
    APP_VERSION_KEY,
    DeliveryMetrics,
    Deployment,
    DeploymentNotFoundError,
    DeploymentStateError,
    DeploymentStatus,
)

__all__ = [
    "APP_VERSION_KEY",
    "DeliveryMetrics",
    "Deployment",
    "DeploymentLog",
    "DeploymentNotFoundError",
    "DeploymentStateError",
    "DeploymentStatus",
    "delivery_metrics",
]
