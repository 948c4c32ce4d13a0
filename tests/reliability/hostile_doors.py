"""The doors of the hostile-input table, and what each row must leave behind.

A *door* is one way input reaches the product: the Python facade, a raw update or
signal on the coordinator, the official ``temporal`` CLI, ``recoveryctl``, and the
services file. A *probe* sends one hostile input through one door and reports what
happened as an ``Observed``; the table (``hostile_table``) pairs each probe with an
``Expect``. A ``Harness`` is one door's world: its own coordinator, a started
facade, and recoveries in known states (``Role``) whose status must not move.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.health_check_specs import HttpHealthCheck
from starter.client.orchestrator import RecoveryOrchestrator
from starter.client.recoveries import recovery_status
from tests.helpers.policies import blocking_policy
from tests.helpers.raw_coordinator import Coordinator
from tests.helpers.recoveries import task_failures
from tests.helpers.recoveryctl import Cli
from tests.helpers.servers import GatedHealthServer
from tests.helpers.waiting import eventually
from workflows.constants import SA_PRIORITY
from workflows.models import RecoveryPolicy, RecoveryState

Outcome = Literal["refused", "ignored", "dropped", "accepted", "no-op"]
Role = Literal["running", "manual", "approved", "finished", "cancelled"]
ROLES: tuple[Role, ...] = ("running", "manual", "approved", "finished", "cancelled")
# Recoveries whose status is compared before and after every row (the others have ended).
LIVE_ROLES: tuple[Role, ...] = ("running", "manual", "approved")
# How long a signal's fate (rejected, ignored, dropped, applied) may take to show.
SIGNAL_FATE_SECONDS = 5.0


class Door(str, enum.Enum):
    """Where a hostile input enters."""

    FACADE = "facade"
    UPDATE = "raw update"
    SIGNAL = "raw signal"
    TEMPORAL = "temporal CLI"
    CTL = "recoveryctl"
    TOML = "recovery.toml"

    @property
    def slug(self) -> str:
        """Return a short name for ids (service names, coordinator ids, test ids)."""
        return self.name.lower()


@dataclass(frozen=True)
class Observed:
    """What one hostile input did at one door."""

    outcome: Outcome
    message: str
    code: int | None = None  # a process's exit code
    error_type: str | None = None  # the error's class, or the ApplicationError's type
    value: Any = None  # what an accepted input returned (a recovery result, say)
    problems: tuple[str, ...] = ()  # how the door misbehaved while refusing (a traceback)


@dataclass(frozen=True)
class Ending:
    """How the recovery an accepted input set going must end."""

    state: str
    fragment: str = ""  # in its error_message
    priority: int | None = None  # the RecoveryPriority search attribute it ran with


@dataclass(frozen=True)
class Expect:
    """What a row must do at a door.

    ``state`` says what the coordinator must look like afterwards: ``unchanged`` (the
    roles' statuses included; an accepted input may only add its own finished recovery
    to ``recent_history``), or ``stopped`` for the rows that race a shutdown.
    """

    outcome: Outcome | tuple[Outcome, ...]
    fragment: str = ""
    code: int | None = None
    error_type: str | None = None
    ends: Ending | None = None
    state: Literal["unchanged", "stopped"] = "unchanged"

    @property
    def outcomes(self) -> tuple[Outcome, ...]:
        """Return the allowed outcomes."""
        return self.outcome if isinstance(self.outcome, tuple) else (self.outcome,)


Probe = Callable[["Harness", str], Awaitable[Observed]]


@dataclass
class Snapshot:
    """The coordinator's state and the live roles' statuses at one moment."""

    status: dict[str, Any]
    config: dict[str, Any]
    rejected: list[str]
    recoveries: dict[str, dict[str, Any]]
    ignored: dict[str, list[str]]


class LogTap(logging.Handler):
    """Keep the SDK's "dropping the signal" warnings: the only trace of an undecodable signal."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "dropping the signal" not in text:
            return
        cause = record.exc_info[1] if record.exc_info else None
        self.lines.append(f"{text}: {cause}" if cause is not None else text)


@dataclass
class World:
    """What every door shares: the server, one worker's task queue, the gated check server."""

    client: Client
    address: str
    task_queue: str
    gate: GatedHealthServer
    tmp: Path
    logs: LogTap


# What the server answers a query while the worker is late to poll or to answer.
LATE_WORKER = frozenset(
    {RPCStatusCode.FAILED_PRECONDITION, RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED}
)


@dataclass
class Harness:
    """One door's coordinator, facades and role recoveries."""

    door: Door
    world: World
    coordinator: Coordinator
    facade: RecoveryOrchestrator
    # A second started facade: the client that keeps scheduling while another stops.
    bystander: RecoveryOrchestrator
    cli: Cli
    roles: dict[Role, str] = field(default_factory=dict)
    stopped: bool = False

    # ----- setting up ---------------------------------------------------------------

    @classmethod
    async def open(cls, door: Door, world: World, roles: Sequence[Role]) -> Harness:
        """Start this door's coordinator (4 slots, 200 kept results) and its roles."""
        coordinator_id = f"hx-coordinator-{door.slug}-{world.task_queue}"
        client = world.client

        def facade() -> RecoveryOrchestrator:
            return RecoveryOrchestrator(
                client=client,
                task_queue=world.task_queue,
                coordinator_workflow_id=coordinator_id,
                max_concurrent_recoveries=4,
            )

        main, bystander = facade(), facade()
        await main.start()
        await bystander.start()
        handle = client.get_workflow_handle(coordinator_id)
        harness = cls(
            door=door,
            world=world,
            coordinator=Coordinator(client, handle, world.task_queue, world.address),
            facade=main,
            bystander=bystander,
            cli=Cli(world.address, coordinator_id, world.task_queue),
        )
        await harness.coordinator.update("configure", {"recent_history_size": 200})
        await asyncio.gather(*(harness._create_role(role) for role in roles))
        await harness._quiet()
        return harness

    def service(self, role: Role) -> str:
        """Return the service name of one of this door's roles."""
        return f"hx-{self.door.slug}-{role}"

    async def _create_role(self, role: Role) -> None:
        """Bring one recovery into the state its role names, and wait until it is there."""
        name = self.service(role)
        orch = self.facade
        if role in ("running", "cancelled"):
            await orch.schedule_recovery(name, policy=blocking_policy())
            await self._recovery(name, lambda s: s.phase.value == "backoff")
            if role == "cancelled":
                assert await orch.cancel_recovery(name)
                await self._closed(name)
        else:
            check = None
            if role == "approved":  # its approved attempt waits on the gate until the end
                check = HttpHealthCheck(url=self.world.gate.url, timeout_ms=300_000)
            policy = RecoveryPolicy(max_retry_attempts=3, health_check=check)
            await orch.schedule_recovery(name, "manual", policy=policy)
            await self._recovery(name, lambda s: s.state is RecoveryState.AWAITING_MANUAL)
            if role != "manual":
                await orch.approve_recovery(name, operator="hx-setup")
            if role == "approved":
                await self._recovery(name, lambda s: s.phase.value == "health_check")
            if role == "finished":
                await self._closed(name)
        self.roles[role] = name

    async def _quiet(self) -> None:
        """Wait until the roles' last reports have reached the coordinator (two equal reads)."""
        last: Snapshot | None = None
        for _ in range(50):
            now = await self.snapshot()
            if last is not None and now == last:
                return
            last = now
            await asyncio.sleep(0.3)
        raise AssertionError(f"the coordinator of {self.door.value} never settled: {last}")

    async def _recovery(self, name: str, accept: Callable[[Any], bool]) -> None:
        async def status() -> Any:
            try:
                return await recovery_status(self.world.client, name)
            except RPCError as err:
                # "no poller seen for task queue recently", or the query's own timeout: on a
                # loaded machine the worker's next poll or answer can come late; the wait's
                # own timeout still bounds it.
                if err.status not in LATE_WORKER:
                    raise
                return None

        await eventually(status, lambda s: s is not None and accept(s), timeout=30)

    async def _closed(self, name: str) -> None:
        handle = self.world.client.get_workflow_handle(f"recovery-{name}")
        await eventually(
            handle.describe, lambda d: d.status != WorkflowExecutionStatus.RUNNING, timeout=30
        )
        await eventually(
            self.coordinator.status,
            lambda s: name not in s["services"]
            and any(r["service_name"] == name for r in s["recent_history"]),
            timeout=30,
        )

    # ----- lifecycle ----------------------------------------------------------------

    async def ensure_stopped(self) -> None:
        """Shut the coordinator down (what ``stop()`` does), unless a row already did."""
        if not self.stopped:
            await self.facade.stop()
            self.stopped = True
            # The cancelled recoveries hold their slots until their workflows have closed.
            await eventually(
                self.coordinator.configuration,
                lambda c: c["slots_in_use"] == 0 and c["unfinished"] == 0,
                timeout=30,
                interval=0.1,
            )

    async def ensure_running(self) -> None:
        """Start the orchestrator again after a shutdown."""
        if self.stopped:
            await self.facade.start()
            self.stopped = False

    # ----- reading the state --------------------------------------------------------

    def fill(self, text: str, svc: str) -> str:
        """Replace the @-tokens of a row (@svc, @running, …, @coordinator, @tq)."""
        for role in ROLES:
            text = text.replace(f"@{role}", self.service(role))
        return (
            text.replace("@svc", svc)
            .replace("@coordinator", self.coordinator.handle.id)
            .replace("@tq", self.world.task_queue)
        )

    async def snapshot(self, roles: Sequence[Role] | None = None) -> Snapshot:
        """Read the coordinator's status and configuration, and the live roles' statuses.

        ``roles`` narrows which recoveries are read (a poll that looks for one change).
        """
        status = await self.coordinator.status()
        status.pop("timestamp")
        config = await self.coordinator.configuration()
        rejected = config.pop("rejected_signals")
        recoveries: dict[str, dict[str, Any]] = {}
        ignored: dict[str, list[str]] = {}
        wanted = LIVE_ROLES if roles is None else roles
        if not self.stopped:
            for role in wanted:
                if role in self.roles and role in LIVE_ROLES:
                    found = await recovery_status(self.world.client, self.roles[role])
                    assert found is not None, role
                    document = found.model_dump(mode="json")
                    ignored[role] = document.pop("ignored_signals")
                    recoveries[role] = document
        return Snapshot(status, config, rejected, recoveries, ignored)

    async def settled(self, before: Snapshot, svc: str, timeout: float = 15.0) -> Snapshot:
        """Read the state once ``svc``'s accepted input's recovery has left it as it was.

        A finished recovery keeps its slot until its workflow has closed, a moment after
        its result is recorded: wait for the state (all but ``recent_history`` and
        ``svc``'s own hold, see ``others_status``) to return.
        """

        def back(now: Snapshot) -> bool:
            was, keep = others_status(before.status, svc), others_status(now.status, svc)
            return keep == was and now.config == before.config

        async def coordinator_only() -> Snapshot:
            return await self.snapshot(roles=())

        with contextlib.suppress(AssertionError):  # what did not come back is reported
            await eventually(coordinator_only, back, timeout=timeout, interval=0.1)
        return await self.snapshot()

    async def assert_healthy(self, *, every_run: bool = False) -> None:
        """The coordinator still runs and never failed a workflow task.

        The current run's history each time; ``every_run`` also reads the runs it
        continued-as-new from (listed by visibility), as the door's last row does.
        """
        description = await self.coordinator.handle.describe()
        assert description.status == WorkflowExecutionStatus.RUNNING, description.status
        if every_run:
            await self.coordinator.assert_never_failed_a_task()
            return
        failures = await task_failures(self.coordinator.handle)
        assert failures == [], failures

    async def history_length(self, workflow_id: str) -> int:
        """Return the length of a workflow's history now (where a new signal will land)."""
        description = await self.world.client.get_workflow_handle(workflow_id).describe()
        return description.raw_description.workflow_execution_info.history_length

    async def _processed(self, workflow_id: str, name: str, mark: int) -> None:
        """Wait until a workflow task completed after the signal ``name`` landed past ``mark``.

        From then on the signal's effect (or its absence) shows in every query. Gives up
        quietly after ``SIGNAL_FATE_SECONDS`` (a continue-as-new moved the history on).
        """
        handle = self.world.client.get_workflow_handle(workflow_id)

        async def landed_and_handled() -> bool:
            signaled = False
            async for event in handle.fetch_history_events():
                if event.event_id <= mark:
                    continue
                attributes = event.workflow_execution_signaled_event_attributes
                if event.HasField("workflow_execution_signaled_event_attributes"):
                    signaled = signaled or attributes.signal_name == name
                elif signaled and event.HasField("workflow_task_completed_event_attributes"):
                    return True
            return False

        with contextlib.suppress(AssertionError):
            await eventually(
                landed_and_handled, bool, timeout=SIGNAL_FATE_SECONDS, interval=0.05
            )

    async def signal_fate(
        self, target: str, name: str, svc: str, before: Snapshot, mark: int, logs: int
    ) -> Observed:
        """Say what a signal ``name`` sent to ``target`` (a workflow id) came to.

        Once the workflow task that took the signal has completed: the coordinator
        records a refused ``schedule_recovery`` in ``rejected_signals``; a recovery
        records an ignored ``approve``/``cancel`` in ``ignored_signals``; an applied one
        shows in the state. A payload that does not decode reaches the handlers as an
        ``UndecodedInput`` and is refused or ignored like any bad input; were the SDK to
        drop one before any handler again, only its worker log would say so: ``dropped``.
        """
        await self._processed(target, name, mark)
        role = next((r for r, n in self.roles.items() if target == f"recovery-{n}"), None)
        now = await self.snapshot(roles=() if role is None else (role,))
        if role is not None and role in now.ignored:
            fresh = _fresh(before.ignored.get(role, []), now.ignored[role])
            if fresh:
                return Observed("ignored", fresh[-1])
        fresh = _fresh(before.rejected, now.rejected)
        if fresh:
            return Observed("refused", fresh[-1])
        known = now.status["services"].keys() | {
            r["service_name"] for r in now.status["recent_history"]
        }
        if svc in known:
            return Observed("accepted", f"{svc} scheduled")
        dropped = [line for line in self.world.logs.lines[logs:] if target in line]
        if dropped:
            return Observed("dropped", dropped[-1])
        return Observed("no-op", "nothing recorded, nothing changed")

    # ----- after an accepted input ----------------------------------------------------

    async def ending_of(self, svc: str) -> dict[str, Any]:
        """Wait for ``svc``'s recovery to end; return its result from ``recent_history``."""
        status = await eventually(
            self.coordinator.status,
            lambda s: svc not in s["services"]
            and any(r["service_name"] == svc for r in s["recent_history"]),
            timeout=30,
            interval=0.1,
        )
        result: dict[str, Any] = [
            r for r in status["recent_history"] if r["service_name"] == svc
        ][-1]
        return result

    async def priority_of(self, svc: str) -> int | None:
        """Return the RecoveryPriority search attribute ``recovery-<svc>`` ran with."""
        handle = self.world.client.get_workflow_handle(f"recovery-{svc}")
        return (await handle.describe()).typed_search_attributes.get(SA_PRIORITY)


def others_status(status: dict[str, Any], svc: str) -> dict[str, Any]:
    """The status but for the recent history and the cell's own hold.

    An accepted input whose recovery failed holds automation off its service for a
    cool-down (``held_back``): its own consequence, not a change to anything else.
    """
    others = {k: v for k, v in status.items() if k not in ("recent_history", "held_back")}
    held = {name: hold for name, hold in status.get("held_back", {}).items() if name != svc}
    return {**others, "held_back": held} if held else others


def _fresh(before: list[str], after: list[str]) -> list[str]:
    """Return the entries of ``after`` that ``before`` did not hold (each is timestamped)."""
    seen = set(before)
    return [line for line in after if line not in seen]
