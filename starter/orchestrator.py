"""``RecoveryOrchestrator``: the reference API made async, over Temporal.

Code written against the original in-process orchestrator needs only ``await``s
added. The queue, slots and policies live in the ``RecoveryCoordinator`` workflow,
so every process that uses this facade sees the same orchestrator.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any

from temporalio.client import Client

from starter.connection import connect
from starter.coordinator_client import CoordinatorClient
from starter.recoveries import approve, wait_for_result
from workflows.constants import (
    CONSTITUTIONAL_HASH,
    COORDINATOR_WORKFLOW_ID,
    LOG_PREFIX,
    TASK_QUEUE,
)
from workflows.coordinator_models import (
    CancelRecoveryInput,
    CancelRecoveryResult,
    ConfigureInput,
    CoordinatorConfig,
    ExecuteRecoveryInput,
    ExecuteRecoveryResult,
    PolicyQueryInput,
    ScheduleRecoveryInput,
    ScheduleRecoveryResult,
    SetRecoveryPolicyInput,
    ShutdownInput,
    ShutdownResult,
)
from workflows.errors import (
    RecoveryOrchestratorError,
    RecoveryValidationError,
)
from workflows.models import (
    RecoveryPolicy,
    RecoveryResult,
    RecoveryStrategy,
    validate_constitutional_hash,
    validate_service_name,
)
from workflows.status import status_document

logger = logging.getLogger("recovery_orchestrator")


class RecoveryOrchestrator:
    """Schedule, execute, cancel and watch recoveries; the reference API with ``await``.

    Args:
        default_policy: The policy for services that have none of their own.
        constitutional_hash: Validated at start, scheduling, execution and policy setting.
        client: An existing Temporal client (with this project's data converter);
            by default one is connected with Temporal's envconfig settings.
        max_concurrent_recoveries: Slots for the coordinator to use; unchanged if None.
        task_queue: The workers' task queue.
        coordinator_workflow_id: The coordinator to drive (one per namespace).
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
    ) -> None:
        self.default_policy = default_policy or RecoveryPolicy()
        self.constitutional_hash = constitutional_hash
        self.max_concurrent_recoveries = max_concurrent_recoveries
        self.task_queue = task_queue
        self.coordinator_workflow_id = coordinator_workflow_id
        self._given_client = client
        self._client = client
        self._coordinator: CoordinatorClient | None = None
        self._connect_lock = asyncio.Lock()
        self._running = False
        logger.info("%s Recovery Orchestrator initialized", LOG_PREFIX)

    @property
    def is_running(self) -> bool:
        """Return True between ``start()`` and ``stop()`` / ``close()``."""
        return self._running

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
        await coordinator.update(
            "configure",
            ConfigureInput(
                orchestrator_running=True,
                default_policy=self.default_policy,
                max_concurrent_recoveries=self.max_concurrent_recoveries,
                constitutional_hash=self.constitutional_hash,
            ),
            CoordinatorConfig,
        )
        self._running = True
        logger.info("%s Recovery orchestrator started", LOG_PREFIX)

    async def stop(self) -> None:
        """Stop the orchestrator and cancel every unfinished recovery (as the reference does)."""
        coordinator = await self._connected()
        result = await coordinator.update(
            "shutdown",
            ShutdownInput(constitutional_hash=self.constitutional_hash),
            ShutdownResult,
        )
        self._running = False
        logger.info(
            "%s Recovery orchestrator stopped; cancelled %d recoveries",
            LOG_PREFIX,
            len(result.cancelled),
        )

    async def close(self) -> None:
        """Disconnect only: recoveries go on (what an application calls at shutdown).

        A client passed to the constructor stays this facade's client; one it
        connected itself is dropped and connected again on next use.
        """
        self._running = False
        self._coordinator = None
        self._client = self._given_client

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
        request = ScheduleRecoveryInput(
            service_name=service_name,
            strategy=strategy,
            priority=priority,
            policy=policy,
            constitutional_hash=self.constitutional_hash,
        )
        coordinator = await self._connected()
        result = await coordinator.update("schedule_recovery", request, ScheduleRecoveryResult)
        logger.info(
            "%s Scheduled recovery for '%s' with strategy %s and priority %d",
            LOG_PREFIX,
            service_name,
            request.strategy.value,
            priority,
        )
        return result

    async def execute_recovery(self, service_name: str) -> RecoveryResult:
        """Start a scheduled recovery now and wait for its result.

        On a MANUAL recovery this approves one attempt and returns once it has run.

        Raises:
            RecoveryOrchestratorError: ``start()`` was not called.
            RecoveryConstitutionalError: the hash does not match.
            RecoveryValidationError: no recovery is scheduled or running for the service.
        """
        self._require_running("execute a recovery")
        validate_constitutional_hash(self.constitutional_hash, "recovery execution")
        validate_service_name(service_name)
        coordinator = await self._connected()
        started = await coordinator.update(
            "execute_recovery",
            ExecuteRecoveryInput(
                service_name=service_name, constitutional_hash=self.constitutional_hash
            ),
            ExecuteRecoveryResult,
        )
        return await wait_for_result(coordinator.client, started)

    async def get_recovery_status(self) -> dict[str, Any]:
        """Return the reference status shape (works without ``start()``)."""
        coordinator = await self._connected()
        status = await coordinator.query("get_recovery_status", result_type=dict)
        if status is None:  # no coordinator in this namespace yet
            return status_document(
                timestamp=datetime.now(timezone.utc),
                orchestrator_running=False,
                services={},
                queued=0,
                unfinished=0,
                recent_history=[],
            )
        return status

    async def cancel_recovery(self, service_name: str) -> bool:
        """Cancel a service's recovery; False if none is scheduled or running."""
        validate_service_name(service_name)
        coordinator = await self._connected()
        try:
            result = await coordinator.update_existing(
                "cancel_recovery",
                CancelRecoveryInput(
                    service_name=service_name, constitutional_hash=self.constitutional_hash
                ),
                CancelRecoveryResult,
            )
        except RecoveryValidationError as err:
            if "No active recovery task" in str(err):
                return False
            raise
        return result is not None and result.cancelled

    async def set_recovery_policy(self, service_name: str, policy: RecoveryPolicy) -> None:
        """Set the policy for a service's next recoveries."""
        validate_constitutional_hash(self.constitutional_hash, "policy setting")
        request = SetRecoveryPolicyInput(
            service_name=service_name, policy=policy, constitutional_hash=self.constitutional_hash
        )
        coordinator = await self._connected()
        await coordinator.update("set_recovery_policy", request, RecoveryPolicy)

    async def get_recovery_policy(self, service_name: str) -> RecoveryPolicy:
        """Return the service's policy, else ``default_policy``."""
        validate_service_name(service_name)
        coordinator = await self._connected()
        policy = await coordinator.query(
            "get_recovery_policy",
            PolicyQueryInput(service_name=service_name),
            result_type=RecoveryPolicy,
        )
        return policy if policy is not None else self.default_policy

    async def approve_recovery(
        self, service_name: str, operator: str = "operator", note: str = ""
    ) -> None:
        """Approve one attempt of a recovery that waits for an operator.

        Raises:
            RecoveryValidationError: no recovery of the service waits for an operator.
        """
        validate_service_name(service_name)
        await approve(await self._connected(), service_name, operator, note)

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

