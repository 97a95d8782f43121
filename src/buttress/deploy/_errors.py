"""The deployment errors: an unknown id, and a change the deployment's state forbids.

Both are ``ValidationError`` (bad input, refused before anything is written),
so callers catching ``ValidationError`` catch them too.
"""

from __future__ import annotations

from buttress.errors import ValidationError

__all__ = ["DeploymentNotFoundError", "DeploymentStateError"]


class DeploymentNotFoundError(ValidationError, LookupError):
    """No deployment has this id."""

    def __init__(self, deployment_id: int) -> None:
        self.deployment_id = deployment_id
        super().__init__(
            "deployment_id",
            "must name a recorded deployment",
            message=f"deployment_id: no deployment with id {deployment_id}",
        )


class DeploymentStateError(ValidationError):
    """The deployment exists but its status does not allow this change."""

    def __init__(self, deployment_id: int, status: str, rule: str) -> None:
        self.deployment_id = deployment_id
        self.status = status
        super().__init__(
            "deployment_id",
            rule,
            message=f"deployment_id: deployment {deployment_id} is {status}; {rule}",
        )
