"""The worker process (console script ``recovery-worker``).

Connects with Temporal's own settings, makes sure the search attributes exist,
polls the ``recovery-orchestrator`` task queue, and shuts down cleanly on
SIGINT/SIGTERM (in-flight activities finish or are retried by the next worker).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Iterable
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.breaker_store import CircuitBreakerStore, open_store, store_url_from_env
from activities.circuit_breakers import CircuitBreakerActivities
from activities.health_checks import HealthCheckActivities, allowed_modules_from_env
from activities.workflow_lookup import WorkflowLookupActivities
from starter.connection import connect, ensure_search_attributes
from starter.coordinator_client import CoordinatorClient
from workflows.constants import TASK_QUEUE
from workflows.coordinator import RecoveryCoordinator
from workflows.service_recovery import ServiceRecovery

logger = logging.getLogger("recovery-worker")

WORKFLOWS = [ServiceRecovery, RecoveryCoordinator]
GRACEFUL_SHUTDOWN = timedelta(seconds=10)


def build_worker(
    client: Client,
    store: CircuitBreakerStore,
    *,
    task_queue: str = TASK_QUEUE,
    health_check_modules: Iterable[str] = (),
) -> Worker:
    """Return a worker with every workflow and activity of the product registered."""
    breakers = CircuitBreakerActivities(store)
    checks = HealthCheckActivities(health_check_modules)
    lookup = WorkflowLookupActivities(client)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        # On SIGTERM, let a running breaker write or health check finish first.
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        activities=[
            breakers.set_breaker_state,
            breakers.list_breakers,
            checks.run_health_check,
            lookup.find_closed_runs,
        ],
    )


async def run_worker(stop: asyncio.Event, task_queue: str = TASK_QUEUE) -> None:
    """Run until ``stop`` is set, then shut down gracefully."""
    store_url = store_url_from_env()
    store = open_store(store_url)  # a bad setting fails before any network wait
    client = await connect()
    await ensure_search_attributes(client)
    worker = build_worker(
        client, store, task_queue=task_queue, health_check_modules=allowed_modules_from_env()
    )
    logger.info(
        "polling task queue %r in namespace %r at %s (circuit store %s)",
        task_queue,
        client.namespace,
        client.service_client.config.target_host,
        store_url,
    )
    async with worker:
        # The coordinator is one per namespace: make sure it runs as soon as a worker does.
        await CoordinatorClient(client, task_queue=task_queue).ensure_running()
        await stop.wait()
        logger.info("shutting down")
    store.close()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``recovery-worker``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task-queue", default=TASK_QUEUE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(_main(args.task_queue))
    except ValueError as err:  # a bad setting, e.g. RECOVERY_CIRCUIT_STORE
        logger.error("cannot start: %s", err)
        raise SystemExit(2) from None
    except RuntimeError as err:  # the server cannot be reached
        logger.error("cannot start: %s", err)
        raise SystemExit(1) from None


async def _main(task_queue: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(stop, task_queue)


if __name__ == "__main__":
    main()
