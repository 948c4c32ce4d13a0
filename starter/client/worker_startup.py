"""What a worker process does before and beside polling (``worker.py``).

It waits for a server that is still starting, makes its version of the Worker
Deployment current where SPEC §9 says so, and starts or configures the circuit watch.
Each logs what it did under the worker's logger (``recovery-worker``): operators and
scripts read these lines to know the worker is up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta

from temporalio.client import Client
from temporalio.client import Interceptor as ClientInterceptor
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.common import WorkerDeploymentVersion
from temporalio.runtime import Runtime
from temporalio.service import RPCError

from starter.client.connection import connect
from starter.client.deployment import Outcome, make_current, move_here
from starter.client.watch_control import ensure_watch
from workflows.circuit_watch_models import WatchInput

logger = logging.getLogger("recovery-worker")

# How long a starting worker waits for a server that does not answer yet.
SERVER_WAIT = timedelta(seconds=60)
WATCH_CONFIGURE_TIMEOUT = timedelta(seconds=30)


async def connect_when_up(
    runtime: Runtime | None, interceptors: Sequence[ClientInterceptor]
) -> Client:
    """Connect, waiting up to ``SERVER_WAIT`` for a server that is still starting.

    A worker started beside its server (compose, a test, a host booting) often comes up
    first. Past the wait, the last error stops the worker as before.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SERVER_WAIT.total_seconds()
    delay = 0.2
    while True:
        try:
            return await connect(runtime=runtime, interceptors=interceptors)
        except RuntimeError as err:
            if loop.time() + delay > deadline:
                raise
            logger.info("waiting for the Temporal server (%s)", str(err)[:200])
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


async def announce_current(
    client: Client, version: WorkerDeploymentVersion, task_queue: str, *, force: bool = False
) -> None:
    """Make this worker's version current where SPEC §9 says so; log which one is current.

    A server slow to learn of the version (``TIMED_OUT``) is asked again until it has:
    on a fresh deployment nothing runs until some version is current.
    """
    while True:
        current = await make_current(
            client, version, only_if_none=not force, task_queue=None if force else task_queue
        )
        if current.outcome is not Outcome.TIMED_OUT:
            break
        logger.warning("worker deployment: %s; trying again", current.message)
    if current.outcome is Outcome.REFUSED:
        logger.warning("worker deployment: %s", current.message)
    else:
        logger.info("worker deployment: %s", current.message)
    if force and current.outcome is Outcome.MADE_CURRENT:
        moved = await move_here(client, version)
        if moved:
            logger.warning(
                "worker deployment: moved %d running workflows pinned to other builds of %s "
                "onto %s (dev mode: one build serves them all)",
                moved,
                version.deployment_name,
                version.build_id,
            )


async def keep_watch(
    client: Client, services: WatchInput, interval: timedelta, task_queue: str
) -> None:
    """Start the circuit watch or configure the running one; log what it is doing.

    Bounded: a watch that cannot take the update (say, its history no longer replays)
    must not keep this worker from serving recoveries; the failure is logged instead.
    """
    try:
        watch = await asyncio.wait_for(
            ensure_watch(client, services, interval=interval, task_queue=task_queue),
            WATCH_CONFIGURE_TIMEOUT.total_seconds(),
        )
    except (
        TimeoutError,
        RPCError,
        WorkflowUpdateFailedError,
        WorkflowUpdateRPCTimeoutOrCancelledError,
    ) as err:
        logger.error(
            "circuit watch not configured (%s); recoveries are served, but open breakers are "
            "not picked up until a worker configures the watch",
            err or type(err).__name__,
        )
        return
    for note in watch.notes:
        logger.info("circuit watch: %s", note)
    # "circuit watch every" starts the line tests and scripts wait for.
    logger.info(
        "circuit watch every %gs with %d services from %s (workflow %r%s)",
        interval.total_seconds(),
        len(services.services),
        services.source or "no services file (defaults for every breaker)",
        watch.workflow_id,
        f"; PAUSED: {watch.note}" if watch.paused else "",
    )
