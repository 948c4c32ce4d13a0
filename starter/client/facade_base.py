"""What every ``RecoveryOrchestrator`` method stands on: one connection, its coordinator,
this process's health-check host, the policies it sent, and the status cache.

The public methods (``starter.client.orchestrator``) only check their arguments and
send; how the client connects (once, under a lock), how a ``health_check_fn`` travels,
and how a whole status is read a page at a time live here.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta, timezone
from typing import Any, Concatenate, ParamSpec, TypeVar

from temporalio.client import Client

from starter.client.connection import connect
from starter.client.coordinator_client import CoordinatorClient
from starter.client.facade_arguments import as_policy
from starter.client.health_check_host import HealthCheckHost, allowed_modules, durable_check
from starter.client.status_cache import StatusCache
from workflows.coordinator_models import StatusPageInput
from workflows.errors import RecoveryOrchestratorError
from workflows.models import RecoveryPolicy
from workflows.status import status_document

_PAGE_KEYS = ("total_services", "next_offset")

_Facade = TypeVar("_Facade", bound="FacadeBase")
_P = ParamSpec("_P")
_R = TypeVar("_R")


def writes(
    method: Callable[Concatenate[_Facade, _P], Coroutine[Any, Any, _R]],
) -> Callable[Concatenate[_Facade, _P], Coroutine[Any, Any, _R]]:
    """Mark a method that changes the coordinator: later status reads must show it."""

    @functools.wraps(method)
    async def writing(self: _Facade, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await method(self, *args, **kwargs)
        finally:
            self._status.invalidate()

    return writing


class FacadeBase:
    """The facade's connection and the state it keeps between calls.

    Args:
        client: An existing client, kept across ``close()``; None connects on first use.
        task_queue: The workers' task queue.
        coordinator_workflow_id: The coordinator to drive.
        health_check_host_wait: How long a hosted check waits to be picked up.
    """

    def __init__(
        self,
        client: Client | None,
        task_queue: str,
        coordinator_workflow_id: str,
        health_check_host_wait: timedelta,
    ) -> None:
        self.task_queue = task_queue
        self.coordinator_workflow_id = coordinator_workflow_id
        self.health_check_host_wait = health_check_host_wait
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

    @property
    def is_running(self) -> bool:
        """Return True between ``start()`` and ``stop()`` / ``close()``."""
        return self._running

    async def _connected(self) -> CoordinatorClient:
        async with self._connect_lock:
            if self._coordinator is None:
                client = self._client or await connect()
                self._client = client
                self._coordinator = CoordinatorClient(
                    client, workflow_id=self.coordinator_workflow_id, task_queue=self.task_queue
                )
            return self._coordinator

    def _disconnect(self) -> None:
        """Drop a client this facade connected itself; a given one stays."""
        self._coordinator = None
        self._client = self._given_client

    def _require_running(self, what: str) -> None:
        if not self._running:
            raise RecoveryOrchestratorError(
                f"Recovery orchestrator is not running: call start() before you {what}"
            )

    async def _sendable(
        self, policy: RecoveryPolicy, service_name: str | None, *, remember: bool = True
    ) -> RecoveryPolicy:
        """Return the policy as it travels: ``health_check_fn`` turned into a check.

        An allow-listed module-level function becomes a durable ``callable`` check;
        any other callable a ``hosted`` one, served by this process's host.
        """
        policy = as_policy(policy)
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

    def _as_given(self, service_name: str, policy: RecoveryPolicy) -> RecoveryPolicy:
        """Return the caller's own object for a policy this process sent, else ``policy``."""
        for key in (service_name, None):
            sent = self._sent_policies.get(key)
            if sent is not None and _same_on_the_wire(sent[0], policy):
                return sent[1]
        return policy

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

    async def _read_status_page(self, page: StatusPageInput) -> dict[str, Any]:
        """Read one page of the status (a namespace with no coordinator has an empty one)."""
        answer = await (await self._connected()).get_recovery_status_page(page)
        if answer is None:
            return {**no_coordinator_status(), "total_services": 0, "next_offset": None}
        return answer

    async def _read_whole_status(self) -> dict[str, Any]:
        """Read every service, a page at a time (one query up to 2,000 services)."""
        coordinator = await self._connected()
        document = await coordinator.get_recovery_status_page(StatusPageInput())
        if document is None:
            return no_coordinator_status()
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


def no_coordinator_status() -> dict[str, Any]:
    """Return the status of a namespace whose coordinator never ran."""
    return status_document(
        timestamp=datetime.now(timezone.utc),
        orchestrator_running=False,
        services={},
        queued=0,
        unfinished=0,
        recent_history=[],
    )


def _same_on_the_wire(sent: RecoveryPolicy, held: RecoveryPolicy) -> bool:
    return sent.model_dump(mode="json") == held.model_dump(mode="json")
