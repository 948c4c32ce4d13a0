"""``RecoveryPolicy(health_check_fn=...)``: turning any callable into a health check.

A function cannot enter a workflow, so the facade sends a check in its place:

- an importable module-level function whose module is listed in this process's
  ``RECOVERY_HEALTH_CHECK_MODULES`` becomes a ``callable`` check
  (``"module:function"``), run by the recovery worker: durable, it survives this
  process;
- any other callable (a lambda, a closure, a bound method, sync or async) becomes a
  ``hosted`` check, run in this very process by a small Temporal worker that serves
  a task queue of its own (the worker-specific task queue pattern of samples-python).
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
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.health_check_specs import (
    HOSTED_CHECK_ACTIVITY,
    CallableHealthCheck,
    HealthCheckInput,
    HealthCheckOutcome,
    HostedHealthCheck,
    clip_detail,
)
from activities.redaction import redact
from activities.settings import RecoverySettings

logger = logging.getLogger("recovery_orchestrator")

# The allow-list the worker reads (SPEC §9): a function whose module is on it runs there.
# How long a hosted check waits for its host to pick it up (its schedule-to-start timeout).
DEFAULT_HOST_WAIT = timedelta(seconds=10)
# What ``HostedHealthCheck.host_wait_ms`` can hold.
MIN_HOST_WAIT, MAX_HOST_WAIT = timedelta(milliseconds=1), timedelta(seconds=300)

HealthCheckFn = Callable[[], Any]


def allowed_modules() -> frozenset[str]:
    """Return this process's comma-separated ``RECOVERY_HEALTH_CHECK_MODULES`` as a set."""
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
        self._worker = Worker(
            self.client,
            task_queue=self.task_queue,
            activities=[self.run_hosted_health_check],
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

    @activity.defn(name=HOSTED_CHECK_ACTIVITY)
    async def run_hosted_health_check(self, input: HealthCheckInput) -> HealthCheckOutcome:
        """Run one hosted check: an exception or a falsy return is a failed check."""
        check = input.check
        if not isinstance(check, HostedHealthCheck):
            raise ApplicationError(
                f"a {check.kind} check was sent to the health check host {self.host}",
                type="HealthCheckNotHosted",
                non_retryable=True,
            )
        started = time.monotonic()
        fn = self._functions.get(check.function)
        if fn is None:
            passed, detail = False, (
                f"health check {check.function!r} is unknown to host {self.host}: "
                f"it was registered by another process"
            )
        else:
            passed, detail = await _run(fn, check)
        elapsed = int((time.monotonic() - started) * 1000)
        detail = redact(detail)
        activity.logger.info("hosted health check for %r: %s (%s)", input.service_name, passed, detail)
        return HealthCheckOutcome(passed=passed, detail=clip_detail(detail), duration_ms=elapsed)


async def _run(fn: HealthCheckFn, check: HostedHealthCheck) -> tuple[bool, str]:
    name = check.function.split(":", 1)[-1]
    try:
        async with asyncio.timeout(check.timeout_ms / 1000):
            try:
                result = await _call(fn)
            except Exception as err:  # the check's own failure is its answer
                return False, f"{name} raised {type(err).__name__}: {err}"
    except TimeoutError:
        return False, f"{name} timed out after {check.timeout_ms} ms"
    return bool(result), f"{name} returned {result!r}"


async def _call(fn: HealthCheckFn) -> Any:
    """Await an async callable; run a sync one in a thread, so the timeout holds."""
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)
    ):
        result = await fn()
    else:
        result = await asyncio.to_thread(fn)
    if inspect.isawaitable(result):  # a sync callable that hands back a coroutine
        result = await result
    return result


def _same(known: HealthCheckFn, fn: HealthCheckFn) -> bool:
    """Return True for the same callable (bound methods are new objects on each access)."""
    if known is fn:
        return True
    try:
        return inspect.ismethod(fn) and bool(known == fn)
    except Exception:
        return False
