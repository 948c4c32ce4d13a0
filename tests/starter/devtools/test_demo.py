"""``recoveryctl demo`` run as a user runs it: a process of its own beside a server and a worker.

The demo is a black box here: its output says what it saw, and the test checks that
against what Temporal recorded (workflow start and close times, breaker writes, search
attribute changes) and against what is left in the store and the schedule once it exits.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import shlex
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.service import RPCError

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.client.connection import connect
from starter.client.watch_control import describe_watch
from starter.devtools.demo_view import approve_command, recovery_cell
from tests.helpers.processes import DevServer, WorkerProcess
from tests.helpers.servers import free_port
from tests.helpers.waiting import eventually
from workflows.circuit_watch_models import WatchInput
from workflows.constants import COORDINATOR_WORKFLOW_ID, recovery_workflow_id
from workflows.coordinator import RecoveryCoordinator
from workflows.models import RecoveryPhase, RecoveryState, RecoveryStatus, RecoveryStrategy

pytestmark = pytest.mark.timeout(240)

RECOVERYCTL = str(Path(sys.executable).parent / "recoveryctl")
AUTOMATIC = ["demo-db", "demo-api", "demo-search"]
DEMO_SECONDS = 150


@dataclass
class Fleet:
    """A private dev server and a worker (watch every second) sharing one breaker store."""

    server: DevServer
    worker: WorkerProcess
    store_path: Path
    client: Client

    @property
    def env(self) -> dict[str, str]:
        """Return the environment that points a client at this server and store."""
        return dict(
            os.environ,
            TEMPORAL_ADDRESS=self.server.address,
            RECOVERY_CIRCUIT_STORE=f"sqlite:///{self.store_path}",
        )


@pytest_asyncio.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    server = DevServer(tmp_path / "temporal")
    worker = WorkerProcess(server.address, tmp_path / "breakers.db")
    worker.env["RECOVERY_WATCH_INTERVAL"] = "1"
    server.start()
    worker.start()
    try:
        client = await eventually(lambda: _connect(server.address), bool, timeout=60, interval=0.5)
        assert client is not None
        # The worker creates the watch's schedule once it polls: the demo's starting point.
        await eventually(lambda: _watch_settings(client), bool, timeout=60, interval=0.5)
        yield Fleet(server, worker, tmp_path / "breakers.db", client)
    finally:
        worker.kill()
        server.kill()


async def _connect(address: str) -> Client | None:
    try:
        return await connect(target_host=address)
    except RuntimeError:
        return None


async def _watch_settings(client: Client) -> WatchInput | None:
    try:
        return (await describe_watch(client)).settings
    except RPCError:  # not created yet
        return None


async def run_demo(cwd: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run ``recoveryctl demo`` to its end; kill it if it outlives ``DEMO_SECONDS``."""
    process = await asyncio.create_subprocess_exec(
        RECOVERYCTL, "demo", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), DEMO_SECONDS)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def last_table(out: str) -> dict[str, list[str]]:
    """Return the last printed table row of each service: PRI, HEALTH, BREAKER, RECOVERY."""
    rows: dict[str, list[str]] = {}
    for line in out.splitlines():
        if line.startswith("demo-"):
            name, *cells = line.split()
            rows[name] = cells[:4]
    return rows


# Breaker writes are local activities (markers); their summaries say which state each set.
LOCAL_WRITES = {
    "reset breaker to half-open": "half-open", "close breaker": "closed", "re-open breaker": "open",
}


@dataclass(frozen=True)
class Step:
    """A completed breaker write (``breaker``) or a ``RecoveryState`` change (``state``)."""

    kind: str
    value: str
    at: datetime


async def steps(client: Client, workflow_id: str) -> list[Step]:
    """Return the recovery's completed breaker writes and its states, in order."""
    found: list[Step] = []
    writes: dict[int, str] = {}
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        at = event.event_time.ToDatetime(tzinfo=timezone.utc)
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled = event.activity_task_scheduled_event_attributes
            if scheduled.activity_type.name == "set_breaker_state":
                writes[event.event_id] = json.loads(scheduled.input.payloads[0].data)["state"]
        if event.HasField("activity_task_completed_event_attributes"):
            completed = event.activity_task_completed_event_attributes
            if completed.scheduled_event_id in writes:
                found.append(Step("breaker", writes[completed.scheduled_event_id], at))
        if event.HasField("marker_recorded_event_attributes"):  # a local breaker write
            summary = json.loads(event.user_metadata.summary.data or b'""')
            if summary in LOCAL_WRITES:
                found.append(Step("breaker", LOCAL_WRITES[summary], at))
        if event.HasField("upsert_workflow_search_attributes_event_attributes"):
            upserted = event.upsert_workflow_search_attributes_event_attributes
            fields = upserted.search_attributes.indexed_fields
            if "RecoveryState" in fields:
                found.append(Step("state", json.loads(fields["RecoveryState"].data), at))
    return found


async def test_the_demo_recovers_in_dependency_order_and_undoes_what_it_changed(
    fleet: Fleet, tmp_path: Path
) -> None:
    client = fleet.client
    before = await _watch_settings(client)

    code, out, err = await run_demo(
        tmp_path, fleet.env, "--exit-when-recovered", "--timeout", "120"
    )

    assert code == 0, f"stdout:\n{out}\nstderr:\n{err}"
    assert "Traceback" not in err
    # The printed approve command pastes into a shell as it is: no placeholder to fill in.
    assert "<you>" not in out
    [approve] = {
        line.strip() for line in out.splitlines()
        if line.strip().endswith(_operator_flag()) and "recoveryctl" in line.split()[0]
    }
    argv = shlex.split(approve)
    program = argv[0] if "/" not in argv[0] else str(tmp_path / argv[0])  # run from tmp_path
    assert Path(argv[0]).name == "recoveryctl" and shutil.which(program)
    # The server is named (a new terminal has no TEMPORAL_ADDRESS), then the approval.
    assert argv[1:3] == ["--address", fleet.env["TEMPORAL_ADDRESS"]]
    assert argv[3:] == ["approve", "demo-payments", "--operator", getpass.getuser()]
    assert [line for line in out.splitlines() if line.startswith("Recovered in ")]
    assert "To approve demo-payments's next attempt, in another terminal:" in out
    # What the demo saw last, just before it cleaned up: the store's breakers and the
    # coordinator's states (its exit condition also needs a call through each breaker to pass).
    table = last_table(out)
    for name in AUTOMATIC:
        assert table[name][2:] == ["closed", "succeeded"], table
    assert table["demo-payments"][3] == "awaiting_manual", table

    # What Temporal recorded. The coordinator: three successes, payments cancelled at exit.
    coordinator = client.get_workflow_handle_for(RecoveryCoordinator.run, COORDINATOR_WORKFLOW_ID)
    status = await coordinator.query(RecoveryCoordinator.get_recovery_status)
    ended = {r["service_name"]: r for r in status["recent_history"]}
    for name in AUTOMATIC:
        assert ended[name]["state"] == "succeeded" and ended[name]["health_check_passed"]
    assert ended["demo-payments"]["state"] == "cancelled"
    assert ended["demo-payments"]["error_message"] == "cancelled: the demo ended"
    assert not set(status["services"]) & {*AUTOMATIC, "demo-payments"}

    # One recovery each; each automatic one's last word on its breaker was "closed".
    runs: dict[str, WorkflowExecution] = {}
    recorded: dict[str, list[Step]] = {}
    for name in [*AUTOMATIC, "demo-payments"]:
        query = f"WorkflowId = '{recovery_workflow_id(name)}'"
        [runs[name]] = await eventually(
            partial(_closed_runs, client, query), lambda r: len(r) == 1, timeout=15, interval=0.5
        )
        recorded[name] = await steps(client, recovery_workflow_id(name))
    for name in AUTOMATIC:
        assert runs[name].status is WorkflowExecutionStatus.COMPLETED
        writes = [step.value for step in recorded[name] if step.kind == "breaker"]
        assert writes[-1] == "closed", writes
    # demo-api's recovery started only once demo-db's had closed db's breaker. (Not once
    # db's workflow had closed: the coordinator starts a dependent as soon as the recovery
    # reports success, a few milliseconds before its workflow completes.)
    [db_closed] = [s.at for s in recorded["demo-db"] if s.kind == "breaker" and s.value == "closed"]
    assert db_closed <= runs["demo-api"].start_time
    assert "awaiting_manual" in [s.value for s in recorded["demo-payments"] if s.kind == "state"]
    assert not [s for s in recorded["demo-payments"] if s.kind == "breaker"]  # nobody approved

    # Nothing of the demo is left behind.
    assert await _watch_settings(client) == before
    store = SQLiteBreakerStore(fleet.store_path)
    try:
        assert not {name for name in store.get_all_states() if name.startswith("demo-")}
    finally:
        store.close()


async def _closed_runs(client: Client, query: str) -> list[WorkflowExecution]:
    return [w async for w in client.list_workflows(query) if w.close_time is not None]


async def test_with_no_server_and_none_startable_the_demo_says_so_in_one_line(
    tmp_path: Path,
) -> None:
    # The port is taken (bound, never listening): nothing answers there, and the embedded
    # server the demo then starts cannot bind it either.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{held.getsockname()[1]}"
        env = dict(os.environ, TEMPORAL_ADDRESS=address, RECOVERY_CIRCUIT_STORE="")
        code, out, err = await run_demo(tmp_path, env, "--ui-port", str(free_port()))
    assert code == 3
    [line] = err.splitlines()
    assert line.startswith(f"recoveryctl: error: no Temporal server at {address}")
    assert "Traceback" not in out + err


def _operator_flag() -> str:
    return f"--operator {shlex.quote(getpass.getuser())}"


def test_the_printed_approve_command_runs_as_pasted() -> None:
    command = approve_command("demo-payments")
    assert "<" not in command and command.endswith(_operator_flag())
    assert shlex.split(command)[1:] == [
        "approve", "demo-payments", "--operator", getpass.getuser()
    ]


def _live(phase: RecoveryPhase, attempts: int, next_at: datetime | None = None) -> RecoveryStatus:
    return RecoveryStatus(
        service_name="demo-db", state=RecoveryState.IN_PROGRESS,
        strategy=RecoveryStrategy.EXPONENTIAL_BACKOFF, priority=1, attempt_count=attempts,
        max_attempts=8, scheduled_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        next_attempt_at=next_at, phase=phase,
    )


@pytest.mark.parametrize(
    ("live", "detail"),
    [
        (None, "starting"),
        (_live(RecoveryPhase.STARTING, 0), "starting"),
        (_live(RecoveryPhase.RESETTING_BREAKER, 1), "attempt 1/8: resetting breaker to half-open"),
        (_live(RecoveryPhase.HEALTH_CHECK, 1), "attempt 1/8: health check"),
        (_live(RecoveryPhase.REOPENING_BREAKER, 2), "attempt 2/8: re-opening breaker"),
        (_live(RecoveryPhase.CLOSING_BREAKER, 3), "attempt 3/8: closing breaker"),
        (
            _live(RecoveryPhase.BACKOFF, 1, datetime(2026, 1, 1, 12, 0, 5, tzinfo=timezone.utc)),
            "backing off before attempt 2/8, until 12:00:05 UTC",
        ),
    ],
)
def test_the_detail_column_shows_the_live_phase_of_a_running_recovery(
    live: RecoveryStatus | None, detail: str
) -> None:
    # The coordinator's entry alone says only "in_progress" with no attempt made yet.
    entry = {
        "state": "in_progress", "strategy": "exponential_backoff", "priority": 1,
        "attempt_count": 0, "max_attempts": 8, "next_attempt_at": None,
    }
    status = {"services": {"demo-db": entry}, "recent_history": []}
    assert recovery_cell("demo-db", status, frozenset(), live) == ("in_progress", detail)
