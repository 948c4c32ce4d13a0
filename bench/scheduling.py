"""Putting many recoveries in front of a coordinator, and waiting for them to get somewhere.

Many services are sent the way bulk callers send them: the coordinator's
``schedule_recoveries`` update, up to ``BATCH`` services per update (its input's
bound), through the product's own ``CoordinatorClient``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from activities.health_check_specs import TcpHealthCheck
from bench.status_calls import raw_status
from starter.client.coordinator_client import CoordinatorClient
from workflows.coordinator_models import ScheduleRecoveriesInput, ScheduleRecoveryInput
from workflows.models import RecoveryPolicy, RecoveryStrategy

# ScheduleRecoveriesInput.recoveries holds at most this many.
BATCH = 1000
LOOPBACK = "127.0.0.1"


def tcp_policy(port: int, **fields: Any) -> RecoveryPolicy:
    """Return a policy whose health check connects to ``port`` on loopback."""
    return RecoveryPolicy(
        health_check=TcpHealthCheck(host=LOOPBACK, port=port, timeout_ms=2000), **fields
    )


def requests(
    names: Sequence[str],
    strategy: RecoveryStrategy,
    *,
    priority: int = 1,
    policy: RecoveryPolicy | None = None,
) -> list[ScheduleRecoveryInput]:
    """Return one schedule request per name, all alike."""
    return [
        ScheduleRecoveryInput(
            service_name=name, strategy=strategy, priority=priority, policy=policy
        )
        for name in names
    ]


async def schedule_in_batches(
    coordinator: CoordinatorClient, recoveries: Sequence[ScheduleRecoveryInput]
) -> None:
    """Send ``recoveries`` in batches of ``BATCH``, one after another."""
    for start in range(0, len(recoveries), BATCH):
        await coordinator.schedule_recoveries(
            ScheduleRecoveriesInput(recoveries=list(recoveries[start : start + BATCH]))
        )


async def poll_until(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.25
) -> None:
    """Call ``check`` until it returns True.

    Raises:
        TimeoutError: naming ``what`` after ``timeout`` seconds.
    """
    began = time.perf_counter()
    while not await check():
        if time.perf_counter() - began > timeout:
            raise TimeoutError(f"{what}: not reached within {timeout:g} s")
        await asyncio.sleep(interval)


def coordinator_settled(
    coordinator: CoordinatorClient, done: Callable[[dict[str, Any]], bool]
) -> Callable[[], Awaitable[bool]]:
    """Return a check that asks the coordinator (by a fresh raw query) whether ``done`` holds."""

    async def check() -> bool:
        return done(await raw_status(coordinator.client, coordinator.workflow_id))

    return check
