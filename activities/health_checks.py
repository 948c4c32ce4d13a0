"""The ``run_health_check`` activity: HTTP, TCP and allow-listed callables.

A ``hosted`` check never runs here: it belongs to the process that scheduled the
recovery, whose own worker serves ``run_hosted_health_check`` on its task queue.

Every check is bounded by its own ``timeout_ms``: a hung service makes the check
fail, it never hangs the recovery. A failing check is returned as an outcome, not
raised, so Temporal does not retry what is really an answer; its detail names the
cause (timed out, connection reset, DNS name not resolved, too many redirects, body
too large, …). While a check runs the activity heartbeats, so a worker that dies
mid-check is noticed at the workflow's heartbeat timeout, not its full timeout.

Trust rules, enforced here because only the worker sees its own environment and
what a name resolves to (see docs/security.md):

- a TCP or HTTP check connects only to addresses ``activities.target_vetting`` has
  vetted after DNS resolution (no link-local or cloud metadata target unless the
  operator lists it in ``RECOVERY_HEALTH_CHECK_ALLOW``);
- an HTTP check follows few redirects, each vetted again, sends headers from the
  environment to its own origin only and reads a bounded body (``activities.http_checks``);
- a callable runs only from a module listed in ``RECOVERY_HEALTH_CHECK_MODULES``,
  and only a function defined in that module.

A refusal is a non-retryable ``ApplicationError`` (type ``HealthCheckNotAllowed``,
or ``HealthCheckSecretMissing`` for an unset variable): it fails the attempt with
its message, and the recovery goes on to its next attempt.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.health_check_specs import (
    CallableHealthCheck,
    HealthCheckInput,
    HealthCheckOutcome,
    HostedHealthCheck,
    HttpHealthCheck,
    TcpHealthCheck,
    clip_detail,
)
from activities.redaction import redact
from activities.settings import RecoverySettings
from activities.target_vetting import (
    NOT_ALLOWED,
    CheckFailed,
    CheckProgress,
    TargetAllowList,
    resolve_target,
)

ALLOWED_MODULES_ENV = "RECOVERY_HEALTH_CHECK_MODULES"

# How often a running check heartbeats. The workflow's heartbeat timeout for
# ``run_health_check`` must be a few of these (5 s): then a dead worker is noticed
# within about 5 s and the check retried on another.
HEARTBEAT_INTERVAL_S = 1.0

T = TypeVar("T")


def allowed_modules_from_env() -> frozenset[str]:
    """Return the comma-separated ``RECOVERY_HEALTH_CHECK_MODULES`` as a set."""
    modules: frozenset[str] = RecoverySettings.read("health_check_modules")
    return modules


class HealthCheckActivities:
    """Health-check activity bound to the worker's allow-lists.

    Args:
        allowed_modules: Modules whose functions may be ``callable`` checks.
        allowed_targets: Targets allowed although refused by the rules; by default
            this process's ``RECOVERY_HEALTH_CHECK_ALLOW`` (a bad value raises
            ``ValueError`` here, so the worker stops before it polls).
    """

    def __init__(
        self,
        allowed_modules: Iterable[str] = (),
        allowed_targets: TargetAllowList | None = None,
    ) -> None:
        self._allowed_modules = frozenset(allowed_modules)
        self._allowed_targets = (
            allowed_targets if allowed_targets is not None else TargetAllowList.from_env()
        )

    @activity.defn(name="run_health_check")
    async def run_health_check(self, input: HealthCheckInput) -> HealthCheckOutcome:
        """Run one check and report whether it passed.

        What it reports, and any error it fails with, is redacted (``activities.redaction``):
        it goes into the history, the ``history`` query, ``last_error`` and the log.
        """
        try:
            return await self._run_health_check(input)
        except asyncio.CancelledError:
            details = activity.cancellation_details()
            if details is None or not details.not_found:
                raise
            # The recovery closed (an operator's cancel) while its check ran: the activity
            # no longer exists, so nobody reads this. The SDK logs a bare CancelledError
            # of that kind as a failure with its traceback; a benign error is one line.
            raise ApplicationError(
                f"health check of {input.service_name!r} stopped: its recovery has closed",
                type="RecoveryClosed",
                non_retryable=True,
                category=ApplicationErrorCategory.BENIGN,
            ) from None
        except Exception as err:
            redacted = _redacted_error(err)
            if redacted is None:
                raise
            raise redacted from None

    async def _run_health_check(self, input: HealthCheckInput) -> HealthCheckOutcome:
        check = input.check
        if isinstance(check, HostedHealthCheck):
            raise ApplicationError(
                f"hosted health check {check.function!r} refused: it runs only in its host "
                f"{check.host!r}, on task queue {check.task_queue!r}, not on a recovery worker",
                type="HealthCheckNotHosted",
                non_retryable=True,
            )
        progress = CheckProgress()
        started = time.monotonic()
        try:
            async with asyncio.timeout(check.timeout_ms / 1000):
                passed, detail = await _heartbeating(self._run(check, progress), progress)
        except TimeoutError:
            passed, detail = False, (
                f"{check.kind} check timed out after {check.timeout_ms} ms "
                f"({progress.phase}: {check.target})"
            )
        elapsed = int((time.monotonic() - started) * 1000)
        detail = clip_detail(redact(detail))
        activity.logger.info("health check for %r: %s (%s)", input.service_name, passed, detail)
        return HealthCheckOutcome(passed=passed, detail=detail, duration_ms=elapsed)

    async def _run(
        self, check: HttpHealthCheck | TcpHealthCheck | CallableHealthCheck, progress: CheckProgress
    ) -> tuple[bool, str]:
        """Dispatch on the check's kind."""
        if isinstance(check, HttpHealthCheck):
            # httpx (with the click, rich and pygments of its CLI) only once a check needs it.
            from activities.http_checks import http_check

            return await http_check(check, self._allowed_targets, progress)
        if isinstance(check, TcpHealthCheck):
            return await _tcp(check, self._allowed_targets, progress)
        return await _callable(check, self._allowed_modules, progress)


async def _heartbeating(work: Awaitable[T], progress: CheckProgress) -> T:
    """Await ``work`` while heartbeating every ``HEARTBEAT_INTERVAL_S`` with its phase."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)
            activity.heartbeat(progress.phase)

    beating = asyncio.create_task(beat())
    try:
        return await work
    finally:
        beating.cancel()


async def _callable(
    check: CallableHealthCheck, allowed_modules: frozenset[str], progress: CheckProgress
) -> tuple[bool, str]:
    """Call an allow-listed module's function; its result, or its exception, is the answer."""
    function = _load_callable(check, allowed_modules)
    progress.phase = f"waiting for {check.ref}"
    try:
        if inspect.iscoroutinefunction(function):
            result = await function()
        else:
            result = await _in_own_thread(function, check.ref)
    except _TooManyHungChecks as err:
        return False, str(err)
    except Exception as err:  # the check's own failure is its answer
        return False, f"{check.ref} raised {type(err).__name__}: {clip_detail(redact(str(err)))}"
    return bool(result), f"{check.ref} returned {clip_detail(redact(repr(result)))}"


def _redacted_error(err: Exception) -> ApplicationError | None:
    """Return ``err`` as an error whose message and causes hold no secret; None if it is so.

    Temporal records an activity's error, its causes included, in the history.
    """
    chain: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__
    texts = [e.message if isinstance(e, ApplicationError) else str(e) for e in chain]
    if all(redact(text) == text for text in texts):
        return None
    message = redact(texts[0])
    if isinstance(err, ApplicationError):
        return ApplicationError(
            message,
            type=err.type,
            non_retryable=err.non_retryable,
            next_retry_delay=err.next_retry_delay,
        )
    return ApplicationError(message, type=type(err).__name__)


class _TooManyHungChecks(Exception):
    """More synchronous checks are still running past their timeout than a worker allows."""


# Synchronous checks still running (hung ones outlive their timeout: a thread cannot be
# stopped). Past this many, new ones fail at once rather than pile up threads.
MAX_CHECK_THREADS = 64
_check_threads = threading.BoundedSemaphore(MAX_CHECK_THREADS)


async def _in_own_thread(function: Callable[[], Any], ref: str) -> Any:
    """Run a synchronous check on a daemon thread of its own and await its answer.

    Not ``asyncio.to_thread``: the default executor's few threads also serve the breaker
    store, so a check that hangs for ever held one of them for ever; enough of them
    stalled every recovery of the worker, and its shutdown waited for them. A daemon
    thread of its own costs only the attempt it belongs to (the timeout ends the wait)
    and never blocks the worker's exit.
    """
    if not _check_threads.acquire(blocking=False):
        raise _TooManyHungChecks(
            f"{ref} not run: {MAX_CHECK_THREADS} synchronous checks of this worker are "
            "still running past their timeouts (hung); restart the worker to free them"
        )
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[Any] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not answer.done():  # the wait may have timed out meanwhile
            outcome()

    def run() -> None:
        try:
            result = function()
        except BaseException as err:  # the check's own failure is its answer
            error = err
            _tell(loop, lambda: settle(lambda: answer.set_exception(error)))
        else:
            _tell(loop, lambda: settle(lambda: answer.set_result(result)))
        finally:
            _check_threads.release()

    threading.Thread(target=run, name=f"health check {ref}", daemon=True).start()
    return await answer


def _tell(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    """Hand ``callback`` to the event loop, unless the loop has closed (the worker exited)."""
    try:
        loop.call_soon_threadsafe(callback)
    except RuntimeError:
        pass


def _load_callable(
    check: CallableHealthCheck, allowed_modules: frozenset[str]
) -> Callable[[], Any]:
    """Return the function ``check.ref`` names, if the allow-list lets it run.

    Only a function defined in the listed module: a name it merely imported (say
    ``os.system``) would let an input call code nobody allowed.
    """
    if check.module not in allowed_modules:
        raise ApplicationError(
            f"callable health check {check.ref!r} refused: module {check.module!r} is not "
            f"in the worker's {ALLOWED_MODULES_ENV}",
            type=NOT_ALLOWED,
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
    if not inspect.isfunction(function) or function.__module__ != check.module:
        raise ApplicationError(
            f"callable health check {check.ref!r} refused: {function_name!r} is not a "
            f"function defined in {check.module!r}",
            type=NOT_ALLOWED,
            non_retryable=True,
        )
    return function


async def _tcp(
    check: TcpHealthCheck, allow: TargetAllowList, progress: CheckProgress
) -> tuple[bool, str]:
    """Connect to a vetted address of ``host:port``; pass when one accepts."""
    where = f"TCP {check.host}:{check.port}"
    progress.phase = f"resolving {check.host}"
    try:
        addresses = await resolve_target(check.host, check.port, allow)
    except CheckFailed as failed:
        return False, f"{where}: {failed}"
    progress.phase = "connecting"
    error: OSError | None = None
    for address in addresses:
        try:
            _, writer = await asyncio.open_connection(address, check.port)
        except OSError as err:
            error = error or err  # the first address's error is the one to report
            continue
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return True, f"{where} accepted a connection"
    assert error is not None  # resolve_target returns at least one address
    return False, f"{where} refused: {error.strerror or error}"
