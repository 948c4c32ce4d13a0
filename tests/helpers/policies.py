"""Policies the tests need again and again, written once."""

from __future__ import annotations

from typing import Any

from activities.health_check_specs import TcpHealthCheck
from tests.helpers.servers import free_port
from workflows.models import RecoveryPolicy

HOUR_MS = 3_600_000


def blocking_policy(*, attempts: int = 5, check_timeout_ms: int = 300) -> RecoveryPolicy:
    """A recovery that cannot finish yet: its check is refused at once, then it waits an hour."""
    return RecoveryPolicy(
        max_retry_attempts=attempts,
        initial_delay_ms=HOUR_MS,
        max_delay_ms=HOUR_MS,
        health_check=TcpHealthCheck(host="127.0.0.1", port=free_port(), timeout_ms=check_timeout_ms),
    )


def blocking_policy_json(**options: Any) -> dict[str, Any]:
    """``blocking_policy`` as the JSON a script or ``recoveryctl --policy`` sends."""
    return blocking_policy(**options).model_dump(mode="json", exclude={"health_check_fn"})
