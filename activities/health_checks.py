"""The ``run_health_check`` activity: HTTP, TCP and allow-listed callables.

A ``hosted`` check never runs here: it belongs to the process that scheduled the
recovery, whose own worker serves ``run_hosted_health_check`` on its task queue.

Every check is bounded by its own ``timeout_ms``: a hung service makes the check
fail, it never hangs the recovery. A failing check is returned as an outcome, not
raised, so Temporal does not retry what is really an answer.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import time
from collections.abc import Iterable

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.health_check_specs import (
    CallableHealthCheck,
    HealthCheckInput,
    HealthCheckOutcome,
    HostedHealthCheck,
    HttpHealthCheck,
    TcpHealthCheck,
)

ALLOWED_MODULES_ENV = "RECOVERY_HEALTH_CHECK_MODULES"


def allowed_modules_from_env() -> frozenset[str]:
    """Return the comma-separated ``RECOVERY_HEALTH_CHECK_MODULES`` as a set."""
    raw = os.environ.get(ALLOWED_MODULES_ENV, "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


class HealthCheckActivities:
    """Health-check activity bound to the worker's callable allow-list."""

    def __init__(self, allowed_modules: Iterable[str] = ()) -> None:
        self._allowed_modules = frozenset(allowed_modules)

    @activity.defn(name="run_health_check")
    async def run_health_check(self, input: HealthCheckInput) -> HealthCheckOutcome:
        """Run one check and report whether it passed."""
        check = input.check
        if isinstance(check, HostedHealthCheck):
            raise ApplicationError(
                f"hosted health check {check.function!r} refused: it runs only in its host "
                f"{check.host!r}, on task queue {check.task_queue!r}, not on a recovery worker",
                type="HealthCheckNotHosted",
                non_retryable=True,
            )
        started = time.monotonic()
        try:
            async with asyncio.timeout(check.timeout_ms / 1000):
                if isinstance(check, HttpHealthCheck):
                    passed, detail = await _http(check)
                elif isinstance(check, TcpHealthCheck):
                    passed, detail = await _tcp(check)
                else:
                    passed, detail = await self._callable(check)
        except TimeoutError:
            passed, detail = False, f"{check.kind} check timed out after {check.timeout_ms} ms"
        elapsed = int((time.monotonic() - started) * 1000)
        activity.logger.info("health check for %r: %s (%s)", input.service_name, passed, detail)
        return HealthCheckOutcome(passed=passed, detail=detail, duration_ms=elapsed)

    async def _callable(self, check: CallableHealthCheck) -> tuple[bool, str]:
        if check.module not in self._allowed_modules:
            raise ApplicationError(
                f"callable health check {check.ref!r} refused: module {check.module!r} is not "
                f"in the worker's {ALLOWED_MODULES_ENV}",
                type="HealthCheckNotAllowed",
                non_retryable=True,
            )
        function_name = check.ref.split(":", 1)[1]
        try:
            function = getattr(importlib.import_module(check.module), function_name)
        except (ImportError, AttributeError) as err:
            raise ApplicationError(
                f"callable health check {check.ref!r} cannot be loaded: {err}",
                type="HealthCheckNotFound",
                non_retryable=True,
            ) from err
        try:
            if inspect.iscoroutinefunction(function):
                result = await function()
            else:
                # A sync check may block; a thread keeps the timeout enforceable.
                result = await asyncio.to_thread(function)
        except Exception as err:  # the check's own failure is its answer
            return False, f"{check.ref} raised {type(err).__name__}: {err}"
        return bool(result), f"{check.ref} returned {result!r}"


async def _http(check: HttpHealthCheck) -> tuple[bool, str]:
    try:
        async with httpx.AsyncClient(timeout=check.timeout_ms / 1000) as client:
            response = await client.get(check.url)
    except httpx.TimeoutException:
        return False, f"GET {check.url} timed out after {check.timeout_ms} ms"
    except httpx.HTTPError as err:
        return False, f"GET {check.url} failed: {type(err).__name__}: {err}"
    passed = response.status_code in check.expected_status
    return passed, f"GET {check.url} answered {response.status_code}"


async def _tcp(check: TcpHealthCheck) -> tuple[bool, str]:
    try:
        _, writer = await asyncio.open_connection(check.host, check.port)
    except OSError as err:
        return False, f"TCP {check.host}:{check.port} refused: {err.strerror or err}"
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True, f"TCP {check.host}:{check.port} accepted a connection"
