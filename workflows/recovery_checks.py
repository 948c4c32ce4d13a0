"""What a ``ServiceRecovery`` attempt runs: breaker writes, health checks, the breaker trial.

Breaker reads and writes are local activities on the recovery's own worker. A health
check runs as an activity on the recovery's task queue, or (a hosted check) on the task
queue of the process that hosts it. With no health check, an automatic recovery watches
pybreaker's own trial instead (the evidence rule, SPEC §4). Called from the workflow
only: these functions schedule its commands, in the order the workflow asks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    TimeoutType,
)
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

from workflows.models import RecoveryPhase
from workflows.recovery_details import check_summary

with workflow.unsafe.imports_passed_through():
    from activities.circuit_breakers import (
        CircuitBreakerActivities,
        GetBreakerStateInput,
        SetBreakerStateInput,
    )
    from activities.health_check_specs import (
        HOSTED_CHECK_ACTIVITY,
        HealthCheck,
        HealthCheckInput,
        HealthCheckOutcome,
        HostedHealthCheck,
    )
    from activities.health_checks import HealthCheckActivities
    from recovery_breakers.store import BreakerRecord, BreakerState

# Breaker writes are idempotent and quick. A store outage (Redis restarting) is not the
# service's fault: keep retrying for a while rather than spend an attempt on it.
BREAKER_TIMEOUT = timedelta(seconds=10)
BREAKER_OUTAGE_LIMIT = timedelta(minutes=2)
BREAKER_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    maximum_interval=timedelta(seconds=5),
)
# A failing check is an outcome, not an error: only infrastructure faults are retried.
HEALTH_CHECK_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=3,
)
# Beyond the check's own timeout, a margin for the activity's own start and finish.
HEALTH_CHECK_MARGIN = timedelta(seconds=5)
# The check heartbeats every second: a worker that dies mid-check is noticed in seconds,
# not at the check's whole timeout.
HEALTH_CHECK_HEARTBEAT = timedelta(seconds=5)
# The evidence rule (SPEC §4): an automatic recovery of a service with no health check
# closes nothing itself. After the reset to half-open it watches pybreaker's own trial,
# reading the breaker after each of these waits (durable timers, 30 s in all): the
# service's own successful calls close it, a failed call re-opens it. Still half-open
# at the end, it is re-opened: no evidence the service answers.
BREAKER_TRIAL_WAITS_S = (1, 2, 4, 8, 15)
BREAKER_TRIAL_S = sum(BREAKER_TRIAL_WAITS_S)
TRIAL_REOPENED = "the service's own call failed while half-open: its breaker re-opened"
TRIAL_NO_EVIDENCE = (
    "no evidence the service answers: no health check is configured and no call closed "
    f"its breaker within {BREAKER_TRIAL_S} s of half-open"
)

_BREAKER_STEP = {
    BreakerState.HALF_OPEN: (RecoveryPhase.RESETTING_BREAKER, "reset breaker to half-open"),
    BreakerState.CLOSED: (RecoveryPhase.CLOSING_BREAKER, "close breaker"),
    BreakerState.OPEN: (RecoveryPhase.REOPENING_BREAKER, "re-open breaker"),
}


class Breaker:
    """The service's breaker as one recovery reads and writes it.

    Attributes:
        exists: False once a write found no breaker in the store: then nothing is
            written to it (a recovery never creates a breaker, SPEC §4).
        maybe_half_open: Set from the reset request until a close or re-open: what a
            cancel must undo.
    """

    def __init__(self, service_name: str, show_phase: Callable[[RecoveryPhase], None]) -> None:
        """Args: ``show_phase`` moves the recovery to a breaker step's phase."""
        self._service_name = service_name
        self._show_phase = show_phase
        self.exists = True
        self.maybe_half_open = False

    async def read(self) -> tuple[BreakerRecord | None, str | None]:
        """Read the breaker as the store holds it; return it (None: absent), or an error."""
        try:
            breaker = await workflow.execute_local_activity_method(
                CircuitBreakerActivities.get_breaker_state,
                GetBreakerStateInput(service_name=self._service_name),
                start_to_close_timeout=BREAKER_TIMEOUT,
                schedule_to_close_timeout=BREAKER_OUTAGE_LIMIT,
                retry_policy=BREAKER_RETRY,
                summary="read breaker state",
            )
        except ActivityError as err:
            raise_if_workflow_cancelled()
            return None, f"read breaker state failed: {cause_message(err)}"
        return breaker, None

    async def set(self, state: BreakerState, *, cleaning_up: bool = False) -> str | None:
        """Set the breaker if the store holds one; return None, or the error that stopped it.

        A breaker the store does not hold is not written (``set_breaker_state`` writes
        only existing breakers): ``exists`` turns False, and later writes of this
        recovery are skipped by their callers.

        Args:
            state: The state to set.
            cleaning_up: True when this is the re-open after a Temporal cancellation.
        """
        phase, summary = _BREAKER_STEP[state]
        self._show_phase(phase)
        if state is BreakerState.HALF_OPEN:
            self.maybe_half_open = True  # from the request on: it may take effect
        request = SetBreakerStateInput(service_name=self._service_name, state=state)
        try:
            # A local activity: one marker inside the workflow task that asked.
            written = await workflow.execute_local_activity_method(
                CircuitBreakerActivities.set_breaker_state,
                request,
                start_to_close_timeout=BREAKER_TIMEOUT,
                schedule_to_close_timeout=BREAKER_OUTAGE_LIMIT,
                retry_policy=BREAKER_RETRY,
                summary=summary,
            )
        except ActivityError as err:
            if not cleaning_up:
                raise_if_workflow_cancelled()
            return f"{summary} failed: {cause_message(err)}"
        self.exists = written is not None
        if written is None:
            self.maybe_half_open = False
            return None
        if state is not BreakerState.HALF_OPEN:
            self.maybe_half_open = False
        return None


async def observe_trial(
    breaker: Breaker,
    cancel_requested: Callable[[], bool],
    reopen_if_cancelled: Callable[[], Awaitable[None]],
) -> tuple[bool, str | None]:
    """Watch the half-open breaker for pybreaker's own trial; return (passed, error).

    Closed by the service's own calls: evidence it answers. Re-opened: a call failed.
    Still half-open after ``BREAKER_TRIAL_S``: re-opened here, no evidence. A cancel
    (signal or Temporal) during a wait re-opens it and ends the recovery cancelled.

    Args:
        breaker: The recovery's breaker, reset to half-open.
        cancel_requested: Whether the ``cancel`` signal has arrived.
        reopen_if_cancelled: The recovery's own: re-open the breaker and stop on a cancel.
    """
    for wait_s in BREAKER_TRIAL_WAITS_S:
        try:
            await workflow.wait_condition(
                cancel_requested,
                timeout=timedelta(seconds=wait_s),
                timeout_summary=f"breaker trial: look again in {wait_s} s",
            )
        except asyncio.TimeoutError:
            pass
        await reopen_if_cancelled()
        found, error = await breaker.read()
        await reopen_if_cancelled()  # a cancel wins, as after a check
        if error is not None:
            await breaker.set(BreakerState.OPEN)
            return False, error
        if found is None:
            breaker.exists = False
            breaker.maybe_half_open = False
            return False, "the breaker was deleted from the store during its trial"
        if found.state is BreakerState.CLOSED:
            breaker.maybe_half_open = False
            return True, None
        if found.state is BreakerState.OPEN:
            breaker.maybe_half_open = False
            return False, TRIAL_REOPENED
    await breaker.set(BreakerState.OPEN)
    return False, TRIAL_NO_EVIDENCE


async def health_check(
    service_name: str, check: HealthCheck
) -> tuple[HealthCheckOutcome | None, str | None]:
    """Run the policy's check; return its outcome, or the error that prevented it."""
    if isinstance(check, HostedHealthCheck):
        return await _hosted_health_check(service_name, check)
    try:
        outcome = await workflow.execute_activity_method(
            HealthCheckActivities.run_health_check,
            HealthCheckInput(service_name=service_name, check=check),
            start_to_close_timeout=timedelta(milliseconds=check.timeout_ms)
            + HEALTH_CHECK_MARGIN,
            heartbeat_timeout=HEALTH_CHECK_HEARTBEAT,
            retry_policy=HEALTH_CHECK_RETRY,
            summary=check_summary(check),
        )
    except ActivityError as err:
        raise_if_workflow_cancelled()
        return None, f"health check could not run: {cause_message(err)}"
    return outcome, None


async def _hosted_health_check(
    service_name: str, check: HostedHealthCheck
) -> tuple[HealthCheckOutcome | None, str | None]:
    """Run a check on the task queue of the process that hosts it.

    Not durable: when nobody picks the check up within ``host_wait_ms`` (the
    schedule-to-start timeout, which Temporal does not retry), the host is gone.
    """
    try:
        outcome = await workflow.execute_activity(
            HOSTED_CHECK_ACTIVITY,
            HealthCheckInput(service_name=service_name, check=check),
            result_type=HealthCheckOutcome,
            task_queue=check.task_queue,
            schedule_to_start_timeout=timedelta(milliseconds=check.host_wait_ms),
            start_to_close_timeout=timedelta(milliseconds=check.timeout_ms)
            + HEALTH_CHECK_MARGIN,
            retry_policy=HEALTH_CHECK_RETRY,
            summary=f"hosted health check on {check.host}",
        )
    except ActivityError as err:
        raise_if_workflow_cancelled()
        if _not_picked_up(err):
            return None, (
                f"health check host {check.host!r} (task queue {check.task_queue!r}) did "
                f"not pick the check up within {check.host_wait_ms} ms: the process that "
                f"scheduled this recovery is gone"
            )
        return None, f"health check could not run: {cause_message(err)}"
    return outcome, None


def temporal_cancel_pending() -> bool:
    """Return True once a Temporal cancellation of the workflow was requested."""
    return workflow.cancellation_reason() is not None


def raise_if_workflow_cancelled() -> None:
    """Let a Temporal cancellation that cut an activity short end the recovery.

    The SDK reports the cut-short activity as an ``ActivityError``; taken for the
    attempt's failure, the recovery would go on to its next backoff instead.
    """
    if temporal_cancel_pending():
        raise asyncio.CancelledError()


def cause_message(err: ActivityError) -> str:
    """Return the innermost useful message of an activity failure."""
    cause: BaseException | None = err.cause
    while isinstance(cause, FailureError) and cause.cause is not None:
        if isinstance(cause, ApplicationError):
            break
        cause = cause.cause
    return str(cause) if cause is not None else str(err)


def _not_picked_up(err: ActivityError) -> bool:
    """Return True when no worker took the activity before its schedule-to-start timeout."""
    cause = err.cause
    return (
        isinstance(cause, TemporalTimeoutError) and cause.type is TimeoutType.SCHEDULE_TO_START
    )
