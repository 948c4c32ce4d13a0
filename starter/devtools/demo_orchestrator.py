"""What the demo asks of the orchestrator: the circuit watch's settings with its services
added (and taken out again), a worker that keeps the watch, the coordinator's status and
a running recovery's step; each bounded, since a query needs a worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from activities.health_check_specs import HttpHealthCheck
from starter.cli.exit_codes import CliError
from starter.client.coordinator_client import CoordinatorClient
from starter.client.recoveries import recovery_status
from starter.client.watch_control import WatchNotRunning, WatchState, describe_watch
from starter.devtools.demo_services import DEMO_NAMES, DemoService
from workflows.circuit_watch_models import CIRCUIT_WATCH_WORKFLOW_ID, ServiceSettings, WatchInput
from workflows.models import RecoveryPolicy, RecoveryStatus

MAX_ATTEMPTS = 8
INITIAL_DELAY_MS = 1000
MAX_DELAY_MS = 4000
# How the watch's settings say that the demo's services were added to them.
DEMO_SOURCE = " + recoveryctl demo"
NO_FILE = "no services file"
QUERY_TIMEOUT = 10.0
# A running recovery's own phase is a detail: never worth holding up the table's refresh.
LIVE_QUERY_TIMEOUT = 2.0


def demo_settings(service: DemoService) -> ServiceSettings:
    """Return how the watch schedules a demo service: short delays, an HTTP health check."""
    spec = service.spec
    return ServiceSettings(
        strategy=spec.strategy,
        priority=spec.priority,
        policy=RecoveryPolicy(
            max_retry_attempts=MAX_ATTEMPTS,
            initial_delay_ms=INITIAL_DELAY_MS,
            max_delay_ms=MAX_DELAY_MS,
            health_check=HttpHealthCheck(url=service.url("/health"), timeout_ms=1000),
            depends_on=list(spec.depends_on),
        ),
    )


def without_demo(settings: WatchInput) -> WatchInput:
    """Return the settings without demo services (an earlier demo killed outright leaves them)."""
    kept = {name: s for name, s in settings.services.items() if name not in DEMO_NAMES}
    source = settings.source
    if source is not None and source.endswith(DEMO_SOURCE):
        source = source.removesuffix(DEMO_SOURCE) or None
        source = None if source == NO_FILE else source
    return settings.model_copy(update={"services": kept, "source": source})


def with_demo(settings: WatchInput, services: list[DemoService]) -> WatchInput:
    """Return the settings with every demo service added."""
    added = {s.name: demo_settings(s) for s in services}
    source = f"{settings.source or NO_FILE}{DEMO_SOURCE}"
    return settings.model_copy(update={"services": {**settings.services, **added}, "source": source})


async def await_watch(
    client: Client, task_queue: str, wait: float, check: Callable[[], None]
) -> WatchState:
    """Return the watch's state once a worker has started it and polls the task queue.

    Args:
        client: A connected client.
        task_queue: The task queue the worker polls.
        wait: Seconds to wait for it at most.
        check: Called on each look (raises when the embedded server has exited).

    Raises:
        CliError: no worker with the watch within ``wait`` seconds.
    """
    deadline = time.monotonic() + wait
    while True:
        check()
        try:
            if await _worker_polls(client, task_queue):
                return await describe_watch(client)
        except WatchNotRunning:
            pass
        if time.monotonic() > deadline:
            raise CliError(
                f"no worker polls task queue {task_queue!r} with the circuit watch "
                f"{CIRCUIT_WATCH_WORKFLOW_ID!r} after {wait:g} s: start one (`make dev`, or "
                "`recovery-worker`) with the same RECOVERY_CIRCUIT_STORE"
            )
        await asyncio.sleep(0.5)


async def _worker_polls(client: Client, task_queue: str) -> bool:
    """Return True if some worker polls the task queue for workflow tasks."""
    answer = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return len(answer.pollers) > 0


async def coordinator_status(coordinator: CoordinatorClient) -> dict[str, Any]:
    """Return the coordinator's status; a query needs a worker, so it is bounded."""
    try:
        status = await asyncio.wait_for(coordinator.get_recovery_status(), QUERY_TIMEOUT)
    except TimeoutError:
        raise CliError(
            f"the coordinator did not answer within {QUERY_TIMEOUT:g} s: is a worker running?"
        ) from None
    if status is None:
        raise CliError(f"no coordinator {coordinator.workflow_id!r}: is a worker running?")
    return status


async def live_status(client: Client, service: str) -> RecoveryStatus | None:
    """Return a running recovery's own status (its phase); None if it cannot say now."""
    try:
        return await asyncio.wait_for(recovery_status(client, service), LIVE_QUERY_TIMEOUT)
    except (TimeoutError, RPCError):
        return None  # the coordinator's entry still gives the state
