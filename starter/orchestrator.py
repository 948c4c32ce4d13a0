"""``RecoveryOrchestrator``: the reference API made async, over Temporal.

Code written against the original in-process orchestrator needs only ``await``s
added. The queue, slots and policies live in the ``RecoveryCoordinator`` workflow,
so every process that uses this facade sees the same orchestrator.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Concatenate, ParamSpec, TypeVar

from temporalio.client import Client

from starter.connection import connect
from starter.coordinator_client import CoordinatorClient
from starter.health_check_host import (
    DEFAULT_HOST_WAIT,
    MAX_HOST_WAIT,
    MIN_HOST_WAIT,
    HealthCheckHost,
    allowed_modules,
    durable_check,
)
from starter.recoveries import approve, execute_and_wait
from starter.status_cache import StatusCache, copied
from workflows.backoff import base_delay_ms
from workflows.constants import (
    CONSTITUTIONAL_HASH,
    COORDINATOR_WORKFLOW_ID,
    LOG_PREFIX,
    TASK_QUEUE,
)
from workflows.coordinator_models import (
    CancelRecoveryInput,
    ConfigureInput,
    DEFAULT_PAUSE_SECONDS,
    MAX_PAUSE_SECONDS,
    ExecuteRecoveryInput,
    PauseServiceInput,
    PauseServiceResult,
    PolicyQueryInput,
    ResumeServiceInput,
    ResumeServiceResult,
    ScheduleRecoveryInput,
    ScheduleRecoveryResult,
    SetRecoveryPolicyInput,
    ShutdownInput,
    StatusPageInput,
)
from workflows.errors import (
    RecoveryOrchestratorError,
    RecoveryValidationError,
)
from workflows.models import (
    ApproveResult,
    RecoveryPolicy,
    RecoveryResult,
    RecoveryStrategy,
    RecoveryTask,
    validate_constitutional_hash,
    validate_service_name,
)
from workflows.status import status_document

logger = logging.getLogger("recovery_orchestrator")

_NO_TIMER = (RecoveryStrategy.IMMEDIATE, RecoveryStrategy.MANUAL)
# How old a status read may be by default (seconds): see ``starter.status_cache``.
DEFAULT_STATUS_MAX_STALENESS = 1.0
# ... and how old while a refresh is in flight: the hard bound of a default read.
DEFAULT_STATUS_STALE_WHILE_REFRESHING = 3.0

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _writes(
    method: Callable[Concatenate[RecoveryOrchestrator, _P], Coroutine[Any, Any, _R]],
) -> Callable[Concatenate[RecoveryOrchestrator, _P], Coroutine[Any, Any, _R]]:
    """Mark a method that changes the coordinator: later status reads must show it."""

    @functools.wraps(method)
    async def writing(self: RecoveryOrchestrator, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await method(self, *args, **kwargs)
        finally:
            self._status.invalidate()

    return writing


class RecoveryOrchestrator:
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
            attempt costs once this process is gone (see ``starter.health_check_host``).
        status_max_staleness: How old (seconds) a ``get_recovery_status()`` answer
            may be by default when no refresh is in flight (older than half of it
            starts one in the background); this facade's own writes always show at
            once. 0 makes every read a fresh query (see ``starter.status_cache``).
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
        self.default_policy = default_policy or RecoveryPolicy()
        self.constitutional_hash = constitutional_hash
        self.max_concurrent_recoveries = max_concurrent_recoveries
        self.task_queue = task_queue
        self.coordinator_workflow_id = coordinator_workflow_id
        if not MIN_HOST_WAIT <= health_check_host_wait <= MAX_HOST_WAIT:
            raise RecoveryValidationError(
                f"health_check_host_wait must be between {MIN_HOST_WAIT} and {MAX_HOST_WAIT}, "
                f"got {health_check_host_wait}"
            )
        self.health_check_host_wait = health_check_host_wait
        self.status_max_staleness = _staleness(status_max_staleness, "status_max_staleness")
        self.status_stale_while_refreshing = _staleness(
            status_stale_while_refreshing, "status_stale_while_refreshing"
        )
        self._status = StatusCache(self._read_whole_status)
        self._given_client = client
        self._client = client
        self._coordinator: CoordinatorClient | None = None
        self._connect_lock = asyncio.Lock()
        self._host: HealthCheckHost | None = None
        # Policies this process sent, by service (None: the default), as sent and as
        # given: get_recovery_policy hands back the caller's own object, health_check_fn
        # included, as the original did.
        self._sent_policies: dict[str | None, tuple[RecoveryPolicy, RecoveryPolicy]] = {}
        self._running = False
        logger.info("%s Recovery Orchestrator initialized", LOG_PREFIX)

    @property
    def is_running(self) -> bool:
        """Return True between ``start()`` and ``stop()`` / ``close()``."""
        return self._running

    @_writes
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

    @_writes
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
        self._coordinator = None
        self._client = self._given_client

    @_writes
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

    @_writes
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
                document = await self._status.read(_staleness(max_staleness, "max_staleness"))
            return copied(document)
        if isinstance(services, (str, bytes, Mapping)):
            raise RecoveryValidationError(
                f"status page: services must be a list of names, got {type(services).__name__}"
            )
        try:
            page = StatusPageInput(
                services=None if services is None else list(services),
                offset=0 if offset is None else offset,
                **({} if limit is None else {"limit": limit}),
            )
        except ValueError as err:
            raise RecoveryValidationError(f"status page: {_first_error(err)}") from None
        answer = await (await self._connected()).get_recovery_status_page(page)
        if answer is None:
            return {**_no_coordinator_status(), "total_services": 0, "next_offset": None}
        return answer

    async def _read_whole_status(self) -> dict[str, Any]:
        """Read every service, a page at a time (one query up to 2,000 services)."""
        coordinator = await self._connected()
        document = await coordinator.get_recovery_status_page(StatusPageInput())
        if document is None:
            return _no_coordinator_status()
        services = dict(document["services"])
        while document["next_offset"] is not None:
            page = await coordinator.get_recovery_status_page(
                StatusPageInput(offset=document["next_offset"])
            )
            if page is None:
                break
            services.update(page["services"])
            document = page
        whole = {key: value for key, value in document.items() if key not in _PAGE_KEYS}
        whole["services"] = services
        return whole

    @_writes
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

    @_writes
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
        if policy is None:
            return self.default_policy
        for key in (service_name, None):
            sent = self._sent_policies.get(key)
            if sent is not None and _same_on_the_wire(sent[0], policy):
                return sent[1]
        return policy

    @_writes
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

    @_writes
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
        seconds = pause_seconds(duration)
        if reason is not None and not isinstance(reason, str):
            raise RecoveryValidationError(
                f"reason must be a string, got {type(reason).__name__}"
            )
        if reason is not None and not reason.strip():
            raise RecoveryValidationError("reason must not be blank (None gives the default)")
        try:
            request = PauseServiceInput(
                service_name=service_name,
                duration_s=seconds,
                **({} if reason is None else {"reason": reason}),
                constitutional_hash=self.constitutional_hash,
            )
        except ValueError as err:
            raise RecoveryValidationError(f"pause: {_first_error(err)}") from None
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

    @_writes
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
        result = await coordinator.resume_service(
            ResumeServiceInput(
                service_name=service_name, constitutional_hash=self.constitutional_hash
            )
        )
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

    async def _sendable(
        self, policy: RecoveryPolicy, service_name: str | None, *, remember: bool = True
    ) -> RecoveryPolicy:
        """Return the policy as it travels: ``health_check_fn`` turned into a check.

        An allow-listed module-level function becomes a durable ``callable`` check;
        any other callable a ``hosted`` one, served by this process's host.
        """
        policy = _as_policy(policy)
        sendable = policy
        fn = policy.health_check_fn
        if fn is not None and policy.health_check is None:
            durable = durable_check(fn, allowed_modules())
            if durable is not None:
                sendable = policy.model_copy(update={"health_check": durable})
            else:
                hosted = (await self._health_check_host()).register(fn)
                sendable = policy.model_copy(update={"health_check": hosted})
        if remember:
            self._sent_policies[service_name] = (sendable, policy)
        return sendable

    async def _health_check_host(self) -> HealthCheckHost:
        """Return this process's health-check host, started on first use."""
        async with self._connect_lock:
            if self._host is None:
                client = self._client or await connect()
                self._client = client
                self._host = HealthCheckHost(client, host_wait=self.health_check_host_wait)
                await self._host.start()
            return self._host

    async def _stop_host(self) -> None:
        host, self._host = self._host, None
        if host is not None:
            await host.shutdown()

    async def _connected(self) -> CoordinatorClient:
        async with self._connect_lock:
            if self._coordinator is None:
                client = self._client or await connect()
                self._client = client
                self._coordinator = CoordinatorClient(
                    client, workflow_id=self.coordinator_workflow_id, task_queue=self.task_queue
                )
            return self._coordinator

    def _require_running(self, what: str) -> None:
        if not self._running:
            raise RecoveryOrchestratorError(
                f"Recovery orchestrator is not running: call start() before you {what}"
            )


_PAGE_KEYS = ("total_services", "next_offset")


def pause_seconds(duration: object) -> int:
    """Return a pause's length in whole seconds: ``timedelta`` or seconds, 1 s to 30 days.

    None is the default pause (24 h). Fractions of a second are dropped.

    Raises:
        RecoveryValidationError: anything else, naming ``duration`` and what was wrong.
    """
    if duration is None:
        return DEFAULT_PAUSE_SECONDS
    if isinstance(duration, timedelta):
        seconds = duration.total_seconds()
    elif isinstance(duration, (int, float)) and not isinstance(duration, bool):
        seconds = float(duration) if abs(duration) <= MAX_PAUSE_SECONDS * 2 else math.inf
    else:
        raise RecoveryValidationError(
            f"duration must be a timedelta or a number of seconds, got {type(duration).__name__}"
        )
    if not 1 <= seconds <= MAX_PAUSE_SECONDS:  # NaN fails both
        raise RecoveryValidationError(
            f"duration must be from 1 second to {MAX_PAUSE_SECONDS // 86_400} days, "
            f"got {_shown_number(duration)}"
        )
    return int(seconds)


def _no_coordinator_status() -> dict[str, Any]:
    """Return the status of a namespace whose coordinator never ran."""
    return status_document(
        timestamp=datetime.now(timezone.utc),
        orchestrator_running=False,
        services={},
        queued=0,
        unfinished=0,
        recent_history=[],
    )


# A day: past that a cached status answers nothing a caller wants, and a larger number
# (10**400, 1e308) would only overflow the clock arithmetic later.
MAX_STALENESS_SECONDS = 86_400.0


def _staleness(value: float, name: str) -> float:
    """Return ``value`` as seconds, or say which parameter was wrong and why."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    seconds = float(value) if number and abs(value) <= MAX_STALENESS_SECONDS else math.nan
    if not 0 <= seconds <= MAX_STALENESS_SECONDS:
        raise RecoveryValidationError(
            f"{name} must be a number of seconds from 0 to {MAX_STALENESS_SECONDS:,.0f}, "
            f"got {_shown_number(value)}"
        )
    return seconds + 0.0  # -0.0 becomes 0.0


def _shown_number(value: object) -> str:
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of {value.bit_length():,} bits"
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}…({len(text)} characters)"


def _first_error(err: ValueError) -> str:
    errors = getattr(err, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(err)


def _same_on_the_wire(sent: RecoveryPolicy, held: RecoveryPolicy) -> bool:
    return sent.model_dump(mode="json") == held.model_dump(mode="json")


def _as_policy(policy: object) -> RecoveryPolicy:
    """Return ``policy`` as a ``RecoveryPolicy``; a dict of its fields is taken too.

    Raises:
        RecoveryValidationError: anything else, or a dict with a bad field.
    """
    if isinstance(policy, RecoveryPolicy):
        return policy
    if isinstance(policy, dict):
        return RecoveryPolicy(**policy)
    raise RecoveryValidationError(
        f"policy must be a RecoveryPolicy (or a dict of its fields), got {type(policy).__name__}"
    )
