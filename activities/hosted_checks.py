"""The ``run_hosted_health_check`` activity: a client's own callable, run in the client's process.

A ``hosted`` check names a function the process that scheduled the recovery registered
(``starter.client.health_check_host.HealthCheckHost``), which serves this activity on a task
queue of its own. The function's exception or falsy return is a failed check, bounded by the
check's ``timeout_ms``; what it reports is redacted, as every check's detail is.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.health_check_specs import (
    HOSTED_CHECK_ACTIVITY,
    HealthCheckInput,
    HealthCheckOutcome,
    HostedHealthCheck,
    clip_detail,
)
from activities.redaction import redact

HealthCheckFn = Callable[[], Any]


class HostedCheckActivities:
    """The hosted-check activity over one host's registered functions.

    Args:
        host: The host as a failed check names it (``"name (pid 42)"``).
        functions: The host's functions by id; read at each check, so a function
            registered after the worker started is found.
    """

    def __init__(self, host: str, functions: Mapping[str, HealthCheckFn]) -> None:
        self._host = host
        self._functions = functions

    @activity.defn(name=HOSTED_CHECK_ACTIVITY)
    async def run_hosted_health_check(self, input: HealthCheckInput) -> HealthCheckOutcome:
        """Run one hosted check: an exception or a falsy return is a failed check."""
        check = input.check
        if not isinstance(check, HostedHealthCheck):
            raise ApplicationError(
                f"a {check.kind} check was sent to the health check host {self._host}",
                type="HealthCheckNotHosted",
                non_retryable=True,
            )
        started = time.monotonic()
        fn = self._functions.get(check.function)
        if fn is None:
            passed, detail = False, (
                f"health check {check.function!r} is unknown to host {self._host}: "
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
