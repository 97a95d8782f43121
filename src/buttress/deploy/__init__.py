"""Deployments: what version runs where, its rollbacks and failures, and delivery metrics.

``DeploymentLog`` checks and logs; stores (memory, SQLite, PostgreSQL) load
and save atomically; ``delivery_metrics`` is the pure DORA computation.
"""

from buttress.deploy._errors import DeploymentNotFoundError, DeploymentStateError
from buttress.deploy._metrics import DeliveryMetrics, delivery_metrics
from buttress.deploy._model import Deployment, DeploymentStatus
from buttress.deploy._service import DeploymentLog
from buttress.deploy._store import APP_VERSION_KEY

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
