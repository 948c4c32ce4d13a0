"""``RecoveryPolicy(health_check_fn=...)``: turning any callable into a health check.

A function cannot enter a workflow, so the facade sends a check in its place:

- an importable module-level function whose module is listed in this process's
  ``RECOVERY_HEALTH_CHECK_MODULES`` becomes a ``callable`` check
  (``"module:function"``), run by the recovery worker: durable, it survives this
  process;
- any other callable (a lambda, a closure, a bound method, sync or async) becomes a
  ``hosted`` check, run in this very process by a small Temporal worker that serves
  a task queue of its own (the worker-specific task queue pattern of samples-python)
  with the activity of ``activities.hosted_checks``.
  Not durable: if this process is gone, the attempt fails once the check has waited
  ``host_wait_ms`` for a pick-up, with a message naming the missing host.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import secrets
import socket
import sys
from collections.abc import Iterable
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.health_check_specs import CallableHealthCheck, HostedHealthCheck
from activities.hosted_checks import HealthCheckFn, HostedCheckActivities
from activities.settings import RecoverySettings

logger = logging.getLogger("recovery_orchestrator")

# How long a hosted check waits for its host to pick it up (its schedule-to-start timeout).
DEFAULT_HOST_WAIT = timedelta(seconds=10)
# What ``HostedHealthCheck.host_wait_ms`` can hold.
MIN_HOST_WAIT, MAX_HOST_WAIT = timedelta(milliseconds=1), timedelta(seconds=300)


def allowed_modules() -> frozenset[str]:
    """Return this process's comma-separated ``RECOVERY_HEALTH_CHECK_MODULES`` as a set.

    The allow-list the worker reads (SPEC §9): a function whose module is on it runs there.
    """
    modules: frozenset[str] = RecoverySettings.read("health_check_modules")
    return modules


def function_ref(fn: HealthCheckFn) -> str | None:
    """Return ``module:function`` for an importable module-level function, else None.

    A function defined in a script run as ``python -m package.module`` is named by
    that module; one in a script run as ``python script.py`` cannot be imported by
    another process, so it has no reference.
    """
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if not inspect.isfunction(fn) or not module or not qualname.isidentifier():
        return None  # lambdas, closures, methods, partials, callable objects
    if module == "__main__":
        main_name = _main_module_name()
        if main_name is None:
            return None
        module = main_name
    if getattr(sys.modules.get(fn.__module__), qualname, None) is not fn:
        return None  # replaced or deleted since: the name no longer finds this function
    return f"{module}:{qualname}"


def _main_module_name() -> str | None:
    """Return the importable name of ``__main__`` (set when run with ``python -m``)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is None or not spec.name or spec.name == "__main__":
        return None
    return str(spec.name)


def durable_check(fn: HealthCheckFn, allowed: Iterable[str]) -> CallableHealthCheck | None:
    """Return the ``callable`` check for ``fn`` if the recovery worker may run it, else None."""
    ref = function_ref(fn)
    if ref is None:
        return None
    check = CallableHealthCheck(ref=ref)
    return check if check.module in frozenset(allowed) else None


class HealthCheckHost:
    """A small worker in this process that runs hosted health checks.

    Args:
        client: The client the worker polls with.
        host_wait: How long a check waits for this host to pick it up before the
            attempt fails (the activity's schedule-to-start timeout).
    """

    def __init__(self, client: Client, *, host_wait: timedelta = DEFAULT_HOST_WAIT) -> None:
        hostname = socket.gethostname()[:60] or "localhost"
        pid = os.getpid()
        self.client = client
        self.host_wait = host_wait
        self.host = f"{hostname} (pid {pid})"
        self.task_queue = f"recovery-host-{hostname}-{pid}-{secrets.token_hex(4)}"
        self._functions: dict[str, HealthCheckFn] = {}
        self._worker: Worker | None = None
        self._running: asyncio.Task[None] | None = None

    @property
    def is_running(self) -> bool:
        """Return True while the worker serves the host's task queue."""
        return self._running is not None and not self._running.done()

    def register(self, fn: HealthCheckFn) -> HostedHealthCheck:
        """Return the ``hosted`` check that runs ``fn`` here (one id per callable)."""
        function_id = next(
            (fid for fid, known in self._functions.items() if _same(known, fn)), None
        )
        if function_id is None:
            name = getattr(fn, "__qualname__", None) or type(fn).__name__
            function_id = f"{len(self._functions) + 1}:{name}"[:200]
            self._functions[function_id] = fn
        return HostedHealthCheck(
            task_queue=self.task_queue,
            function=function_id,
            host=self.host,
            host_wait_ms=max(1, int(self.host_wait.total_seconds() * 1000)),
        )

    async def start(self) -> None:
        """Start serving the host's task queue (once)."""
        if self._worker is not None:
            return
        checks = HostedCheckActivities(self.host, self._functions)
        self._worker = Worker(
            self.client,
            task_queue=self.task_queue,
            activities=[checks.run_hosted_health_check],
        )
        self._running = asyncio.create_task(self._worker.run(), name=f"health check host {self.host}")
        logger.info("health checks hosted on task queue %r", self.task_queue)

    async def shutdown(self) -> None:
        """Stop serving: checks sent here from now on fail after their host wait."""
        worker, running = self._worker, self._running
        self._worker = self._running = None
        if worker is None or running is None:
            return
        if not running.done():
            await worker.shutdown()
        try:
            await running
        except Exception as err:  # the worker's own failure: nothing more to stop
            logger.warning("health check host %s ended with %s", self.host, err)


def _same(known: HealthCheckFn, fn: HealthCheckFn) -> bool:
    """Return True for the same callable (bound methods are new objects on each access)."""
    if known is fn:
        return True
    try:
        return inspect.ismethod(fn) and bool(known == fn)
    except Exception:
        return False
