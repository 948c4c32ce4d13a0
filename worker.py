"""The worker process (console script ``recovery-worker``).

Connects with Temporal's own settings, makes sure the search attributes exist,
loads the services file (``recovery.toml``), starts the circuit watch (or gives
the one running its settings and interval), polls the ``recovery-orchestrator`` task
queue as a version of the Worker Deployment ``recovery-orchestrator`` (build
``RECOVERY_BUILD_ID``, else the package version; made current where the deployment has
none yet: ``starter/client/deployment.py``; the start-up steps are in
``starter/client/worker_startup.py``), and shuts down cleanly on SIGINT/SIGTERM
(in-flight activities finish or are retried by the next worker). A bad setting or
services file stops it before it connects.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Iterable
from datetime import timedelta

from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.circuit_breakers import CircuitBreakerActivities
from activities.coordinator_handoff import CoordinatorHandoffActivities
from activities.health_checks import HealthCheckActivities, allowed_modules_from_env
from activities.notifications import NotificationActivities
from activities.notify_targets import NotifyConfig
from activities.redaction import install_log_redaction, redact
from activities.settings import METRICS_BIND_ENV as METRICS_BIND_ENV
from activities.settings import RecoverySettings
from activities.target_vetting import TargetAllowList
from activities.worker_tuning import WorkerTuning
from activities.workflow_lookup import WorkflowLookupActivities
from recovery_breakers.store import CircuitBreakerStore
from recovery_breakers.stores import open_store, store_url_from_env
from starter.client.connection import ensure_search_attributes, metrics_runtime
from starter.client.coordinator_client import CoordinatorClient
from starter.client.deployment import (
    DEPLOYMENT_NAME,
    deployment_config,
    version_text,
    worker_version,
)
from starter.client.fleet_metrics import publish_fleet_gauges
from starter.client.services_file import load_services_from_env, services_file_from_env
from starter.client.tracing import tracing_from_env, tracing_interceptors
from starter.client.watch_control import interval_from_env, parse_interval
from starter.client.worker_startup import announce_current, connect_when_up, keep_watch
from workflows.circuit_watch import CircuitWatch
from workflows.constants import TASK_QUEUE
from workflows.converter import worker_data_converter
from workflows.coordinator import RecoveryCoordinator
from workflows.details_on_read import CurrentDetailsOnRead
from workflows.guard import MessageGuard
from workflows.notification import RecoveryNotification
from workflows.service_recovery import ServiceRecovery

logger = logging.getLogger("recovery-worker")


WORKFLOWS = [ServiceRecovery, RecoveryCoordinator, CircuitWatch, RecoveryNotification]
# Every worker and replayer runs the workflows behind the guard: no message a client
# sends fails a workflow task (workflows/guard.py). The Web UI's current details of
# the coordinator are written when read (workflows/details_on_read.py).
WORKFLOW_INTERCEPTORS = [MessageGuard(), CurrentDetailsOnRead()]
# Shared by every workflow run instead of imported again into each run's sandbox. The
# sandbox's copy of our modules and their pydantic models cost about 440 KB a run: a
# worker caching 1,000 recoveries in backoff held 727 MB against 160 MB for bare timer
# workflows (make bench); passed through, a cached recovery costs about 180 KB. Our
# workflow modules keep no module state, and their determinism is checked by the
# replay tests (tests/workflows/test_replay.py), not by the sandbox's import restrictions.
PASSED_THROUGH = ("pydantic", "pydantic_core", "activities", "workflows")
# Replays (tests/workflows/test_replay.py) run the workflows exactly as the worker does.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSED_THROUGH)
)
GRACEFUL_SHUTDOWN = timedelta(seconds=10)
# A workflow's next task waits this long on the sticky queue of the worker that ran it
# last before any worker may take it. The SDK's 10 s made every attempt due just after
# a worker died 10 s late (tests/reliability/test_worker_kills.py); the price of 1 s is
# an occasional replay when a live worker is slow to poll.
STICKY_QUEUE_TIMEOUT = timedelta(seconds=1)


def build_worker(
    client: Client,
    store: CircuitBreakerStore,
    *,
    task_queue: str = TASK_QUEUE,
    health_check_modules: Iterable[str] = (),
    health_check_targets: TargetAllowList | None = None,
    tuning: WorkerTuning | None = None,
    deployment: WorkerDeploymentVersion | None = None,
    notifications: NotificationActivities | None = None,
) -> Worker:
    """Return a worker with every workflow and activity of the product registered.

    ``deployment`` makes it a versioned worker, that version of its Worker Deployment
    (``starter.client.deployment``: every run pinned to the version it started on); the
    ``recovery-worker`` process always gives one. Without it the worker is unversioned,
    as the in-process tests run it.

    Its workflows decode with ``worker_data_converter``, so that a signal whose payload
    does not decode is recorded as rejected rather than dropped by the SDK.
    ``health_check_targets`` defaults to ``RECOVERY_HEALTH_CHECK_ALLOW``; ``tuning``
    (``RECOVERY_WORKER_TUNING``) to the SDK's cache, concurrency and poller defaults.
    ``notifications`` delivers notifications (docs/notifications.md); without it, none
    are posted.
    """
    breakers = CircuitBreakerActivities(store)
    checks = HealthCheckActivities(health_check_modules, health_check_targets)
    lookup = WorkflowLookupActivities(client)
    handoff = CoordinatorHandoffActivities(
        lambda workflow_id: CoordinatorClient(client, workflow_id=workflow_id, task_queue=task_queue)
    )
    # No targets unless given: the process reads them from its settings (run_worker).
    notify = notifications or NotificationActivities(NotifyConfig())
    return Worker(
        _with_worker_converter(client),
        task_queue=task_queue,
        workflows=WORKFLOWS,
        interceptors=WORKFLOW_INTERCEPTORS,
        sticky_queue_schedule_to_start_timeout=STICKY_QUEUE_TIMEOUT,
        workflow_runner=WORKFLOW_RUNNER,
        # On SIGTERM, let a running breaker write or health check finish first.
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        deployment_config=deployment_config(deployment) if deployment is not None else None,
        activities=[
            breakers.set_breaker_state,
            breakers.get_breaker_state,
            breakers.list_breakers,
            breakers.list_open_breakers,
            handoff.hand_over_open_breakers,
            checks.run_health_check,
            lookup.find_closed_runs,
            notify.notification_targets,
            notify.deliver_notification,
        ],
        **(tuning or WorkerTuning()).worker_options(),
    )


def _with_worker_converter(client: Client) -> Client:
    """The same connection and settings, decoding with ``worker_data_converter``."""
    config = client.config()
    config["data_converter"] = worker_data_converter
    return Client(**config)


def metrics_bind_from_env() -> str | None:
    """Return ``RECOVERY_METRICS_BIND`` (``host:port``), else None: no metrics."""
    bind: str | None = RecoverySettings.read("metrics_bind")
    return bind


async def run_worker(
    stop: asyncio.Event,
    task_queue: str = TASK_QUEUE,
    watch_interval: timedelta | None = None,
    metrics_bind: str | None = None,
    tracing: bool = False,
    *,
    build_id: str | None = None,
    deployment_name: str = DEPLOYMENT_NAME,
    force_current: bool = False,
) -> None:
    """Run until ``stop`` is set, then shut down gracefully.

    Args:
        stop: Set to shut down.
        task_queue: The task queue to poll.
        watch_interval: The circuit watch's interval (else ``RECOVERY_WATCH_INTERVAL``).
        metrics_bind: ``host:port`` for Prometheus metrics (else ``RECOVERY_METRICS_BIND``;
            off when neither is set).
        tracing: Trace workflows and activities with OpenTelemetry (else ``RECOVERY_TRACING``).
        build_id: This worker's build (else ``RECOVERY_BUILD_ID``, else the package version).
        deployment_name: The Worker Deployment it is a version of.
        force_current: Make this version current even when another one is (``make dev``);
            otherwise only where the deployment has no current version yet.
    """
    # Bad settings fail before any network wait.
    version = worker_version(build_id, deployment_name)
    store_url = store_url_from_env()
    store = open_store(store_url)
    services = load_services_from_env()
    notifications = NotificationActivities.from_env(services_file_from_env())
    logger.info("%s", notifications.describe())
    modules, targets = allowed_modules_from_env(), TargetAllowList.from_env()
    tuning = WorkerTuning.from_env()
    interval = watch_interval or interval_from_env()
    metrics_bind = metrics_bind or metrics_bind_from_env()
    runtime = metrics_runtime(metrics_bind) if metrics_bind else None
    interceptors = tracing_interceptors() if tracing or tracing_from_env() else []
    client = await connect_when_up(runtime, interceptors)
    if metrics_bind:
        logger.info("metrics at http://%s/metrics", metrics_bind)
    await ensure_search_attributes(client)
    worker = build_worker(
        client,
        store,
        task_queue=task_queue,
        health_check_modules=modules,
        health_check_targets=targets,
        tuning=tuning,
        deployment=version,
        notifications=notifications,
    )
    logger.info(
        "polling task queue %r in namespace %r at %s as version %s (circuit store %s; "
        "tuning: %s)",
        task_queue,
        client.namespace,
        client.service_client.config.target_host,
        version_text(version),
        redact(store_url),
        tuning.describe(),
    )
    async with worker:
        # Beside the coordinator's and the watch's start, not before it: on a fresh (or
        # loaded) server the version may take a while to be known, and a workflow started
        # meanwhile waits, then runs on the version made current.
        announcing = asyncio.create_task(
            announce_current(client, version, task_queue, force=force_current)
        )
        # The coordinator is one per namespace: make sure it runs as soon as a worker does.
        await CoordinatorClient(client, task_queue=task_queue).ensure_running()
        # The one long-lived watch: started, or given this worker's settings and interval.
        await keep_watch(client, services, interval, task_queue)
        gauges = (
            asyncio.create_task(publish_fleet_gauges(client, runtime, stop))
            if runtime is not None
            else None
        )
        await stop.wait()
        announcing.cancel()
        logger.info("shutting down")
        if gauges is not None:
            await gauges
    store.close()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``recovery-worker``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task-queue", default=TASK_QUEUE)
    parser.add_argument(
        "--watch-interval",
        type=_interval_argument,
        default=None,
        help="seconds between the circuit watch's looks (default $RECOVERY_WATCH_INTERVAL, else 10)",
    )
    parser.add_argument(
        "--metrics-bind",
        metavar="HOST:PORT",
        default=None,
        help=f"serve Prometheus metrics at http://HOST:PORT/metrics (default ${METRICS_BIND_ENV}, else off)",
    )
    parser.add_argument(
        "--make-current",
        action="store_true",
        help="make this worker's version current even when another one is (what `make dev` "
        "does); by default only where the deployment has no current version yet",
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="trace workflows and activities with OpenTelemetry (default $RECOVERY_TRACING)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # Every line this process logs (ours, temporalio's, httpx's, activities', workflows')
    # passes activities.redaction first: no secret reaches the log.
    install_log_redaction()
    try:
        asyncio.run(
            _main(
                args.task_queue, args.watch_interval, args.metrics_bind, args.tracing,
                args.make_current,
            )
        )
    except (ValueError, OSError) as err:  # a bad setting, services file or TLS file path
        logger.error("cannot start: %s", err)
        raise SystemExit(2) from None
    except RuntimeError as err:  # the server cannot be reached
        logger.error("cannot start: %s", err)
        raise SystemExit(1) from None


def _interval_argument(text: str) -> timedelta:
    try:
        return parse_interval(text, "--watch-interval")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


async def _main(
    task_queue: str,
    watch_interval: timedelta | None,
    metrics_bind: str | None,
    tracing: bool,
    force_current: bool = False,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(
        stop, task_queue, watch_interval, metrics_bind, tracing, force_current=force_current
    )


if __name__ == "__main__":
    main()
