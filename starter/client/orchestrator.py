"""``RecoveryOrchestrator``: the reference API made async, over Temporal.

Code written against the original in-process orchestrator needs only ``await``s
added. The queue, slots and policies live in the ``RecoveryCoordinator`` workflow,
so every process that uses this facade sees the same orchestrator. The connection,
the health-check host and the status cache it stands on are in
``starter.client.facade_base``; argument checks in ``starter.client.facade_arguments``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from temporalio.client import Client

from starter.client.facade_arguments import pause_request, staleness, status_page
from starter.client.facade_base import FacadeBase, writes
from starter.client.health_check_host import DEFAULT_HOST_WAIT, MAX_HOST_WAIT, MIN_HOST_WAIT
from starter.client.recoveries import approve, execute_and_wait
from starter.client.status_cache import copied
from workflows.backoff import base_delay_ms
from workflows.constants import CONSTITUTIONAL_HASH, COORDINATOR_WORKFLOW_ID, LOG_PREFIX, TASK_QUEUE
from workflows.coordinator_models import (
    CancelRecoveryInput,
    ConfigureInput,
    ExecuteRecoveryInput,
    PauseServiceResult,
    PolicyQueryInput,
    ResumeServiceInput,
    ResumeServiceResult,
    ScheduleRecoveryInput,
    ScheduleRecoveryResult,
    SetRecoveryPolicyInput,
    ShutdownInput,
)
from workflows.errors import RecoveryOrchestratorError, RecoveryValidationError
from workflows.models import (
    ApproveResult,
    RecoveryPolicy,
    RecoveryResult,
    RecoveryStrategy,
    RecoveryTask,
    validate_constitutional_hash,
    validate_service_name,
)

logger = logging.getLogger("recovery_orchestrator")

_NO_TIMER = (RecoveryStrategy.IMMEDIATE, RecoveryStrategy.MANUAL)
# How old a status read may be by default (seconds): see ``starter.client.status_cache``.
DEFAULT_STATUS_MAX_STALENESS = 1.0
# ... and how old while a refresh is in flight: the hard bound of a default read.
DEFAULT_STATUS_STALE_WHILE_REFRESHING = 3.0


class RecoveryOrchestrator(FacadeBase):
    """Schedule, execute, cancel and watch recoveries; the reference API with ``await``.

    Args:
        default_policy: The policy for services that have none of their own.
        constitutional_hash: Validated at start, scheduling, execution and policy setting.
        client: An existing Temporal client (with this project's data converter);
            by default one is connected with Temporal's envconfig settings.
        max_concurrent_recoveries: Slots for the coordinator to use; unchanged if None.
        task_queue: The workers' task queue.
        coordinator_workflow_id: The coordinator to drive (one per namespace today).
        health_check_host_wait: How long a ``health_check_fn`` hosted by this process
            waits to be picked up before its attempt fails (default 10 s): what an
            attempt costs once this process is gone (see ``starter.client.health_check_host``).
        status_max_staleness: How old (seconds) a ``get_recovery_status()`` answer
            may be by default when no refresh is in flight (older than half of it
            starts one in the background); this facade's own writes always show at
            once. 0 makes every read a fresh query (see ``starter.client.status_cache``).
        status_stale_while_refreshing: The hard bound (seconds, default 3) of a
            default read: while a refresh is in flight (a busy coordinator can take
            over a second to answer), the previous answer is still served until it
            is this old instead of every reader waiting. No effect at or below
            ``status_max_staleness``, nor when that is 0, nor after this facade's
            own writes.
    """

    def __init__(
        self,
        default_policy: RecoveryPolicy | None = None,
        constitutional_hash: str = CONSTITUTIONAL_HASH,
        *,
        client: Client | None = None,
        max_concurrent_recoveries: int | None = None,
        task_queue: str = TASK_QUEUE,
        coordinator_workflow_id: str = COORDINATOR_WORKFLOW_ID,
        health_check_host_wait: timedelta = DEFAULT_HOST_WAIT,
        status_max_staleness: float = DEFAULT_STATUS_MAX_STALENESS,
        status_stale_while_refreshing: float = DEFAULT_STATUS_STALE_WHILE_REFRESHING,
    ) -> None:
        if not MIN_HOST_WAIT <= health_check_host_wait <= MAX_HOST_WAIT:
            raise RecoveryValidationError(
                f"health_check_host_wait must be between {MIN_HOST_WAIT} and {MAX_HOST_WAIT}, "
                f"got {health_check_host_wait}"
            )
        super().__init__(client, task_queue, coordinator_workflow_id, health_check_host_wait)
        self.default_policy = default_policy or RecoveryPolicy()
        self.constitutional_hash = constitutional_hash
        self.max_concurrent_recoveries = max_concurrent_recoveries
        self.status_max_staleness = staleness(status_max_staleness, "status_max_staleness")
        self.status_stale_while_refreshing = staleness(
            status_stale_while_refreshing, "status_stale_while_refreshing"
        )
        logger.info("%s Recovery Orchestrator initialized", LOG_PREFIX)

    @writes
    async def start(self) -> None:
        """Connect, validate the hash and make sure the coordinator runs.

        Raises:
            RecoveryOrchestratorError: this instance is already running.
            RecoveryConstitutionalError: the hash does not match.
        """
        if self._running:
            raise RecoveryOrchestratorError("Recovery orchestrator is already running")
        validate_constitutional_hash(self.constitutional_hash, "orchestrator start")
        validate_constitutional_hash(self.default_policy.constitutional_hash, "orchestrator start")
        coordinator = await self._connected()
        default_policy = await self._sendable(self.default_policy, None)
        await coordinator.configure(
            ConfigureInput(
                orchestrator_running=True,
                default_policy=default_policy,
                max_concurrent_recoveries=self.max_concurrent_recoveries,
                constitutional_hash=self.constitutional_hash,
            )
        )
        self._running = True
        logger.info("%s Recovery orchestrator started", LOG_PREFIX)

    @writes
    async def stop(self) -> None:
        """Stop the orchestrator and cancel every unfinished recovery (as the reference does).

        Also stops this process's health-check host, if it started one.
        """
        coordinator = await self._connected()
        result = await coordinator.shutdown(
            ShutdownInput(constitutional_hash=self.constitutional_hash)
        )
        self._running = False
        await self._stop_host()
        logger.info(
            "%s Recovery orchestrator stopped; cancelled %d recoveries",
            LOG_PREFIX,
            len(result.cancelled),
        )

    async def close(self) -> None:
        """Disconnect only: recoveries go on (what an application calls at shutdown).

        A client passed to the constructor stays this facade's client; one it
        connected itself is dropped and connected again on next use. The
        health-check host stops: recoveries whose ``health_check_fn`` it ran fail
        their next attempts after ``health_check_host_wait``.
        """
        self._running = False
        await self._stop_host()
        self._disconnect()

    @writes
    async def schedule_recovery(
        self,
        service_name: str,
        strategy: RecoveryStrategy | str = RecoveryStrategy.EXPONENTIAL_BACKOFF,
        priority: int = 1,
        policy: RecoveryPolicy | None = None,
    ) -> ScheduleRecoveryResult:
        """Schedule a service for recovery (lower priority number first).

        Raises:
            RecoveryOrchestratorError: ``start()`` was not called.
            RecoveryConstitutionalError: the hash does not match.
            RecoveryValidationError: a bad name, strategy, priority or policy.
        """
        self._require_running("schedule a recovery")
        validate_constitutional_hash(self.constitutional_hash, "recovery scheduling")
        validate_service_name(service_name)
        request = ScheduleRecoveryInput(
            service_name=service_name,
            strategy=strategy,
            priority=priority,
            policy=None if policy is None else await self._sendable(policy, None, remember=False),
            constitutional_hash=self.constitutional_hash,
        )
        coordinator = await self._connected()
        result = await coordinator.schedule_recovery(request)
        logger.info(
            "%s Scheduled recovery for '%s' with strategy %s and priority %d",
            LOG_PREFIX,
            service_name,
            request.strategy.value,
            priority,
        )
        return result

    @writes
    async def execute_recovery(self, service_name: str) -> RecoveryResult:
        """Start a scheduled recovery now and wait for its result.

        On a MANUAL recovery this approves one attempt and returns once it has run
        (concurrent calls share that one attempt). On a recovery that has already
        finished it returns that recovery's final result.

        Raises:
            RecoveryOrchestratorError: ``start()`` was not called.
            RecoveryConstitutionalError: the hash does not match.
            RecoveryValidationError: the service was never scheduled.
        """
        self._require_running("execute a recovery")
        validate_constitutional_hash(self.constitutional_hash, "recovery execution")
        validate_service_name(service_name)
        coordinator = await self._connected()
        return await execute_and_wait(
            coordinator,
            ExecuteRecoveryInput(
                service_name=service_name, constitutional_hash=self.constitutional_hash
            ),
        )

    async def get_recovery_status(
        self,
        *,
        max_staleness: float | None = None,
        services: Iterable[str] | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> dict[str, Any]:
        """Return the reference status shape (works without ``start()``).

        Args:
            max_staleness: How old (seconds) the answer may be, a hard bound; 0 for
                a fresh query. Default: ``status_max_staleness``, or up to
                ``status_stale_while_refreshing`` while a refresh is in flight. This
                facade's own writes show at once whatever the value.
            services: Only these services (a page query: always fresh).
            limit: At most this many services (1 to 2,000), in name order, from
                ``offset``; the answer then adds ``total_services`` and ``next_offset``.
            offset: Where the page starts (default 0).

        Raises:
            RecoveryValidationError: a bad name, limit, offset or staleness.
        """
        if services is None and limit is None and offset is None:
            if max_staleness is None:
                document = await self._status.read(
                    self.status_max_staleness, self.status_stale_while_refreshing
                )
            else:
                document = await self._status.read(staleness(max_staleness, "max_staleness"))
            return copied(document)
        return await self._read_status_page(status_page(services, limit, offset))

    @writes
    async def cancel_recovery(self, service_name: str) -> bool:
        """Cancel a service's recovery; False if none is scheduled or running."""
        validate_service_name(service_name)
        coordinator = await self._connected()
        try:
            result = await coordinator.cancel_recovery(
                CancelRecoveryInput(
                    service_name=service_name, constitutional_hash=self.constitutional_hash
                )
            )
        except RecoveryValidationError as err:
            if err.code == "unknown_service":
                return False
            raise
        return result is not None and result.cancelled

    @writes
    async def set_recovery_policy(self, service_name: str, policy: RecoveryPolicy) -> None:
        """Set the policy for a service's next recoveries."""
        validate_constitutional_hash(self.constitutional_hash, "policy setting")
        validate_service_name(service_name)
        request = SetRecoveryPolicyInput(
            service_name=service_name,
            policy=await self._sendable(policy, service_name),
            constitutional_hash=self.constitutional_hash,
        )
        coordinator = await self._connected()
        await coordinator.set_recovery_policy(request)

    async def get_recovery_policy(self, service_name: str) -> RecoveryPolicy:
        """Return the service's policy, else ``default_policy``.

        A policy this process set comes back as the very object given (its
        ``health_check_fn`` included) while the coordinator still holds it.
        """
        validate_service_name(service_name)
        coordinator = await self._connected()
        policy = await coordinator.get_recovery_policy(PolicyQueryInput(service_name=service_name))
        return self.default_policy if policy is None else self._as_given(service_name, policy)

    @writes
    async def approve_recovery(
        self, service_name: str, operator: str = "operator", note: str = ""
    ) -> ApproveResult:
        """Approve one attempt of a recovery that awaits an operator; return the attempt it starts.

        One approval counts per wait, however many callers approve at once: the others
        are refused, naming the operator whose approval came first.

        Raises:
            RecoveryValidationError: no recovery of the service is scheduled or running.
            RecoveryOrchestratorError: the recovery does not await an operator; the
                message names the state and phase it was in, and no approval counts.
        """
        validate_service_name(service_name)
        return await approve(await self._connected(), service_name, operator, note)

    @writes
    async def pause_service(
        self,
        service_name: str,
        duration: timedelta | float | None = None,
        reason: str | None = None,
    ) -> PauseServiceResult:
        """Hold automation off a service for ``duration`` (default 24 h, at most 30 days).

        While paused, nothing automatic (the circuit watch or any other trigger)
        schedules it; an operator still can. Every pause ends by itself; pausing a
        paused service replaces its pause. Works without ``start()``.

        Args:
            service_name: The service.
            duration: How long, a ``timedelta`` or seconds (whole seconds count).
            reason: Why, shown in the status's ``paused`` (default "paused by operator").

        Returns:
            The pause now in force: ``until`` (UTC) and ``reason``.

        Raises:
            RecoveryConstitutionalError: the hash does not match.
            RecoveryValidationError: a bad name, duration or reason (the message names it).
        """
        validate_constitutional_hash(self.constitutional_hash, "service pause")
        validate_service_name(service_name)
        request = pause_request(service_name, duration, reason, self.constitutional_hash)
        coordinator = await self._connected()
        result = await coordinator.pause_service(request)
        logger.info(
            "%s Paused automatic recovery of '%s' until %s: %s",
            LOG_PREFIX,
            service_name,
            result.until.isoformat(),
            result.reason,
        )
        return result

    @writes
    async def resume_service(self, service_name: str) -> ResumeServiceResult:
        """Lift whatever holds automation off a service: a pause, a failure's cool-down,
        or an operator's cancel. ``lifted`` names what was lifted (empty: nothing was).

        Raises:
            RecoveryConstitutionalError: the hash does not match.
            RecoveryValidationError: a bad name.
        """
        validate_constitutional_hash(self.constitutional_hash, "service resume")
        validate_service_name(service_name)
        coordinator = await self._connected()
        request = ResumeServiceInput(service_name=service_name, constitutional_hash=self.constitutional_hash)
        result = await coordinator.resume_service(request)
        logger.info(
            "%s Resumed automatic recovery of '%s' (lifted: %s)",
            LOG_PREFIX,
            service_name,
            ", ".join(result.lifted) or "nothing",
        )
        return result

    def next_attempt_at(self, task: RecoveryTask) -> datetime:
        """Return when ``task``'s next attempt is due: now (UTC) + ``delay(attempt_count)``.

        The reference timing of SPEC §3, before jitter: no attempt made yet, the
        ``immediate`` strategy and the ``manual`` one (an operator decides) give now.
        """
        now = datetime.now(timezone.utc)
        if task.attempt_count < 1 or task.strategy in _NO_TIMER:
            return now
        delay = base_delay_ms(task.policy, task.strategy, task.attempt_count)
        return now + timedelta(milliseconds=delay)

    def _calculate_next_attempt(self, task: RecoveryTask) -> datetime:
        """Return ``next_attempt_at(task)``: the original implementation's name for it.

        Both exist because code and tests written against the original call this
        private helper by name; new code should use the public ``next_attempt_at``.
        """
        return self.next_attempt_at(task)
