"""``recoveryctl demo``: four small services break, and the orchestrator recovers them live.

Meant for a second terminal beside ``make dev``. The demo runs four HTTP services on
loopback, guards each with a real pybreaker breaker on the shared store, adds them to the
circuit watch's settings, breaks them, and prints a table while the watch and the
coordinator bring them back in priority and dependency order. With no Temporal server at
the configured address it starts the embedded one and a worker, as ``recoveryctl dev``
does. However it ends (recovered, Ctrl-C, SIGTERM, an error), it undoes what it changed:
the demo's unfinished recoveries, the watch's settings, the demo breakers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, suppress
from dataclasses import asdict, dataclass
from typing import Any

import click
import redis
from rich.console import Group, RenderableType
from rich.text import Text
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
)
from temporalio.envconfig import ClientConfig
from temporalio.service import RPCError, RPCStatusCode

from activities.breaker_store import CircuitBreakerStore, store_url_from_env
from activities.redaction import redact
from activities.health_check_specs import HttpHealthCheck
from activities.stores import open_store
from starter.cli_context import CliError, Context, Unreachable, positive_seconds
from starter.connection import DEFAULT_TARGET
from starter.coordinator_client import CoordinatorClient
from starter.demo_services import (
    CALL_INTERVAL,
    DEMO_NAMES,
    FAIL_MAX,
    MANUAL_NAMES,
    SPECS,
    Caller,
    DemoService,
    serving,
)
from starter.dev import (
    STATE_DIR,
    DevServerError,
    DevSetupError,
    Embedded,
    embedded_temporal,
    recoveryctl_program,
)
from starter.recoveries import recovery_status
from starter import render
from starter.render import approve_command as shell_approve_command
from starter.watch_control import (
    WatchNotRunning,
    WatchState,
    describe_watch,
    look_now,
    replace_watch_settings,
)
from workflows.circuit_watch_models import CIRCUIT_WATCH_WORKFLOW_ID, ServiceSettings, WatchInput
from workflows.constants import recovery_workflow_id
from workflows.coordinator_models import CancelRecoveryInput
from workflows.errors import RecoveryOrchestratorError
from workflows.models import RecoveryPhase, RecoveryPolicy, RecoveryStatus

MAX_ATTEMPTS = 8
INITIAL_DELAY_MS = 1000
MAX_DELAY_MS = 4000
REFRESH_INTERVAL = 1.0
# Working calls before the break, so the closed breakers are seen first.
HEALTHY_PHASE = 1.5
OPEN_TIMEOUT = 30.0
QUERY_TIMEOUT = 10.0
# A running recovery's own phase is a detail: never worth holding up the table's refresh.
LIVE_QUERY_TIMEOUT = 2.0
CLEANUP_STEP_TIMEOUT = 20.0
# A worker just started (by us, or in another terminal) needs a moment to create the watch.
WORKER_WAIT_EMBEDDED = 60.0
WORKER_WAIT = 10.0
# After this long without any demo recovery, say what to check.
NO_RECOVERY_HINT_AFTER = 20.0
# Cancel, then forget: a cancelled recovery may re-open its breaker as it stops, and
# the watch may schedule it again before the breaker is forgotten; this many rounds.
RETIRE_ROUNDS = 3
DEMO_LOG = STATE_DIR / "demo.log"
# How the watch's settings say that the demo's services were added to them.
DEMO_SOURCE = " + recoveryctl demo"
NO_FILE = "no services file"
HEADERS = ("SERVICE", "PRI", "HEALTH", "BREAKER", "RECOVERY", "LAST CALL", "DETAIL")


@dataclass(frozen=True)
class WorkflowRun:
    """One run of a workflow, which a later run under the same id must not be taken for."""

    workflow_id: str
    run_id: str


@dataclass(frozen=True)
class Row:
    """One line of the demo's table."""

    service: str
    priority: int
    health: str
    breaker: str
    recovery: str
    last_call: str
    detail: str


def demo_settings(service: DemoService) -> ServiceSettings:
    """Return how the watch schedules a demo service: short delays, an HTTP health check."""
    spec = service.spec
    return ServiceSettings(
        strategy=spec.strategy,
        priority=spec.priority,
        policy=RecoveryPolicy(
            max_retry_attempts=MAX_ATTEMPTS,
            initial_delay_ms=INITIAL_DELAY_MS,
            max_delay_ms=MAX_DELAY_MS,
            health_check=HttpHealthCheck(url=service.url("/health"), timeout_ms=1000),
            depends_on=list(spec.depends_on),
        ),
    )


def without_demo(settings: WatchInput) -> WatchInput:
    """Return the settings without demo services (an earlier demo killed outright leaves them)."""
    kept = {name: s for name, s in settings.services.items() if name not in DEMO_NAMES}
    source = settings.source
    if source is not None and source.endswith(DEMO_SOURCE):
        source = source.removesuffix(DEMO_SOURCE) or None
        source = None if source == NO_FILE else source
    return settings.model_copy(update={"services": kept, "source": source})


def with_demo(settings: WatchInput, services: list[DemoService]) -> WatchInput:
    """Return the settings with every demo service added."""
    added = {s.name: demo_settings(s) for s in services}
    source = f"{settings.source or NO_FILE}{DEMO_SOURCE}"
    return settings.model_copy(update={"services": {**settings.services, **added}, "source": source})


def history_key(result: dict[str, Any]) -> tuple[str, str, str]:
    """Return what tells one finished recovery from another in ``recent_history``."""
    return (result["service_name"], result["timestamp"], result["state"])


def approve_command(service: str) -> str:
    """Return the command that approves one attempt: pasted into a shell, it runs as is
    (the operator is the user running the demo, the server named unless it is the default
    one, everything quoted for the shell)."""
    address = configured_address()
    default = address in ("localhost:7233", "127.0.0.1:7233")
    return shell_approve_command(service, recoveryctl_program(), None if default else address)


def recovery_cell(
    name: str,
    status: dict[str, Any],
    seen_before: frozenset[tuple[str, str, str]],
    live: RecoveryStatus | None = None,
) -> tuple[str, str]:
    """Return the service's recovery state and a detail: its unfinished recovery, else
    the last one that finished since the demo began, else nothing.

    ``live`` is the recovery's own status, when read: the detail then names the step
    it is in (the coordinator's entry knows only the state)."""
    entry = status["services"].get(name)
    if entry is not None:
        return entry["state"], _entry_detail(name, entry, live)
    ended = [
        r for r in status["recent_history"]
        if r["service_name"] == name and history_key(r) not in seen_before
    ]
    if not ended:
        return "-", ""
    last = ended[-1]
    if last["state"] == "succeeded":
        seconds = last["elapsed_time_ms"] / 1000
        checked = "" if last.get("health_check_passed") else " (closed without a health check)"
        return "succeeded", f"{last['attempt_number']} attempt(s) in {seconds:.1f} s{checked}"
    return last["state"], last["error_message"] or ""


# What each step of a running recovery is called in the DETAIL column.
PHASE_WORDS = {
    RecoveryPhase.STARTING: "starting",
    RecoveryPhase.AWAITING_APPROVAL: "awaiting approval",
    RecoveryPhase.BACKOFF: "backing off",
    RecoveryPhase.RESETTING_BREAKER: "resetting breaker to half-open",
    RecoveryPhase.HEALTH_CHECK: "health check",
    RecoveryPhase.BREAKER_TRIAL: "waiting for the service's own calls",
    RecoveryPhase.CLOSING_BREAKER: "closing breaker",
    RecoveryPhase.REOPENING_BREAKER: "re-opening breaker",
    RecoveryPhase.FINISHED: "finishing",
}


def _entry_detail(name: str, entry: dict[str, Any], live: RecoveryStatus | None = None) -> str:
    if entry.get("reason"):
        return str(entry["reason"])
    if entry["state"] == "awaiting_manual":
        return f"approve: {approve_command(name)}"
    if live is not None and not live.state.finished:
        return _live_detail(live)
    if not entry["attempt_count"]:
        return "starting"
    detail = f"attempt {entry['attempt_count']}/{entry['max_attempts']}"
    if entry.get("next_attempt_at"):
        detail += f", next at {entry['next_attempt_at'][11:19]} UTC"
    return detail


def _live_detail(live: RecoveryStatus) -> str:
    """Return the step a running recovery is in, from its own ``status`` query."""
    words = PHASE_WORDS.get(live.phase, live.phase.value)
    if live.phase is RecoveryPhase.STARTING:
        return words
    if live.phase is RecoveryPhase.BACKOFF:
        detail = f"{words} before attempt {live.attempt_count + 1}/{live.max_attempts}"
        if live.next_attempt_at is not None:
            detail += f", until {live.next_attempt_at.strftime('%H:%M:%S')} UTC"
        return detail
    return f"attempt {live.attempt_count}/{live.max_attempts}: {words}"


def table(rows: list[Row]) -> RenderableType:
    """Return the rows under ``HEADERS``: the borderless table of ``recoveryctl``'s others."""
    shown = render.table(
        list(HEADERS),
        [
            [
                r.service,
                r.priority,
                r.health,
                render.state_text(r.breaker),
                render.state_text(r.recovery),
                r.last_call,
                r.detail,
            ]
            for r in rows
        ],
    )
    return shown or Text("no demo services")


class Output:
    """What the demo prints: notices, the table when it changes, the outcome (or JSON lines)."""

    def __init__(self, as_json: bool) -> None:
        self._json = as_json
        self._started = time.monotonic()
        self._shown: list[Row] = []
        self._console = render.console()

    def elapsed(self) -> float:
        """Return seconds since the demo began."""
        return time.monotonic() - self._started

    def notice(self, text: str) -> None:
        """Print a message for the reader."""
        print(json.dumps({"message": text}) if self._json else text, flush=True)

    def rows(self, rows: list[Row]) -> None:
        """Print the table if it differs from the last one printed."""
        if rows == self._shown:
            return
        self._shown = rows
        if self._json:
            line = {"elapsed_seconds": round(self.elapsed(), 1), "services": [asdict(r) for r in rows]}
            print(json.dumps(line), flush=True)
        else:
            when = Text(f"\n[{self.elapsed():5.1f} s]")
            render.show_renderable(Group(when, table(rows)), self._console)

    def outcome(self, summary: dict[str, Any], text: str) -> None:
        """Print how the demo ended."""
        print(json.dumps(summary) if self._json else f"\n{text}", flush=True)


def configured_address() -> str:
    """Return the Temporal address the client settings name (``TEMPORAL_ADDRESS``, profiles)."""
    config = ClientConfig.load_client_connect_config()
    return str(config.get("target_host") or DEFAULT_TARGET)


def split_address(address: str) -> tuple[str, int | None]:
    """Return the host and port of ``host:port`` (``[::1]:7233`` too); port None if unparsable."""
    host, _, port = address.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return address, None


def is_loopback(host: str) -> bool:
    """Return True for this machine's own addresses: the only place the demo starts a server."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Demo:
    """One run of the demo; ``run`` does the show, the exit stack undoes it."""

    def __init__(self, ctx: Context, store: CircuitBreakerStore, store_url: str) -> None:
        self.args = ctx.args
        self.ctx = ctx
        self.store = store
        self.store_url = store_url
        self.output = Output(ctx.args.json)
        self.embedded: Embedded | None = None
        self.client: Client | None = None
        self.coordinator: CoordinatorClient | None = None
        self.services: list[DemoService] = []
        self.caller: Caller | None = None
        self.seen_before: frozenset[tuple[str, str, str]] = frozenset()
        self.last_rows: list[Row] = []
        self._told: set[str] = set()
        self.undone = "everything it changed is undone."

    # ----- the show -----------------------------------------------------------------

    async def run(self, stack: AsyncExitStack) -> list[Row]:
        """Set up, break, and watch until every automatic service is back (or forever).

        Every change is undone by a callback on ``stack``, pushed before the change is
        made: a Ctrl-C in the middle of an RPC still undoes what that RPC may have done.
        """
        client = self.client = await self._connect(stack)
        watch = await self._await_watch(client)
        original = without_demo(watch.settings)
        self.coordinator = CoordinatorClient(
            client, workflow_id=original.coordinator_workflow_id, task_queue=self.args.task_queue
        )
        status = await self._status()
        if not status["orchestrator_running"]:
            raise CliError(
                "the orchestrator is stopped: `recoveryctl configure --start` starts it again"
            )
        self.seen_before = frozenset(history_key(r) for r in status["recent_history"])
        leftovers = await self._retire("an earlier demo left it")
        if leftovers:
            self.output.notice(f"Cancelled what an earlier demo left running: {', '.join(leftovers)}")

        self.services = await stack.enter_async_context(serving(SPECS))
        self._guide(watch)
        stack.push_async_callback(
            self._quietly,
            lambda: replace_watch_settings(client, original),
            "restore the circuit watch's settings",
            "Restored the circuit watch's settings.",
        )
        await replace_watch_settings(client, with_demo(original, self.services))
        stack.push_async_callback(
            self._quietly, self._retire_at_exit, "cancel the demo's recoveries and forget its breakers"
        )
        caller = self.caller = Caller(self.services, self.store_url)
        stack.push_async_callback(caller.close)
        caller.start()

        await self._watch_for(HEALTHY_PHASE)
        self.output.notice(
            f"Breaking all four services: calls fail, and after {FAIL_MAX} failures each breaker opens."
        )
        for service in self.services:
            service.break_down()
        await self._until_all_open()
        now = time.monotonic()
        for service in self.services:
            service.schedule_repair(now)
        await look_now(client)
        self.output.notice(
            "All four breakers are open. The circuit watch looked now (no need to wait for its "
            "next look): it hands them to the coordinator, which recovers them by priority and "
            "depends_on."
        )
        return await self._until_recovered(time.monotonic())

    async def _connect(self, stack: AsyncExitStack) -> Client:
        """Connect; with no server at a local address, start the embedded one and a worker."""
        try:
            return await self.ctx.client()
        except Unreachable:
            address = configured_address()
            host, port = split_address(address)
            if port is None or not is_loopback(host):
                raise
        self.output.notice(
            f"No Temporal server answers at {address}: starting the embedded one and a worker "
            f"(their logs go to {DEMO_LOG}); both stop when the demo ends."
        )
        STATE_DIR.mkdir(exist_ok=True)
        log = stack.enter_context(open(DEMO_LOG, "ab"))
        stack.callback(self._say_embedded_stopped)
        worker_env = {"TEMPORAL_ADDRESS": address, "RECOVERY_CIRCUIT_STORE": self.store_url}
        try:
            self.embedded = await stack.enter_async_context(
                embedded_temporal(port, self._ui_port(port), worker_env=worker_env, log=log)
            )
        except (DevSetupError, DevServerError) as err:  # the embedded server did not come up
            raise Unreachable(
                f"no Temporal server at {address}, and the embedded one did not start: {err} "
                f"(see {DEMO_LOG})"
            ) from None
        return self.embedded.client

    def _say_embedded_stopped(self) -> None:
        if self.embedded is not None:
            self.output.notice("Stopped the embedded Temporal server and worker.")

    def _ui_port(self, port: int | None) -> int:
        """Return the Web UI's port: ``--ui-port``, else the server's + 1000 (start-dev's rule)."""
        if self.args.ui_port is not None:
            return int(self.args.ui_port)
        return (port or 7233) + 1000

    async def _await_watch(self, client: Client) -> WatchState:
        """Return the watch's state once a worker has started it and polls the task queue."""
        wait = WORKER_WAIT_EMBEDDED if self.embedded else WORKER_WAIT
        deadline = time.monotonic() + wait
        while True:
            self._check_embedded()
            try:
                if await self._worker_polls(client):
                    return await describe_watch(client)
            except WatchNotRunning:
                pass
            if time.monotonic() > deadline:
                raise CliError(
                    f"no worker polls task queue {self.args.task_queue!r} with the circuit watch "
                    f"{CIRCUIT_WATCH_WORKFLOW_ID!r} after {wait:g} s: start one (`make dev`, or "
                    "`recovery-worker`) with the same RECOVERY_CIRCUIT_STORE"
                )
            await asyncio.sleep(0.5)

    async def _worker_polls(self, client: Client) -> bool:
        """Return True if some worker polls the task queue for workflow tasks."""
        answer = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=self.args.task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        return len(answer.pollers) > 0

    def _guide(self, watch: WatchState) -> None:
        """Print what the demo does and where to look while it runs."""
        assert self.client is not None
        host, port = split_address(self.client.service_client.config.target_host)
        ui = f"http://{'localhost' if is_loopback(host) else host}:{self._ui_port(port)}"
        namespace = self.client.namespace
        store_flag = f" --store {self.args.store}" if self.args.store else ""
        lines = [
            "recoveryctl demo: four HTTP services on 127.0.0.1, each behind a real pybreaker "
            f"breaker (fail_max={FAIL_MAX}) in {redact(self.store_url)}",
            *(
                f"  {s.name:<14} priority {s.spec.priority}  {s.spec.note:<42} {s.url('/health')}"
                for s in self.services
            ),
            "Watch it:",
            f"  recoveries (Web UI)   {ui}/namespaces/{namespace}/workflows",
            f"  the watch (Web UI)    {ui}/namespaces/{namespace}/workflows/{CIRCUIT_WATCH_WORKFLOW_ID}",
            f"  breakers              recoveryctl breakers{store_flag}",
            "  recoveries            recoveryctl status",
            "Ctrl-C ends the demo and undoes what it changed.",
        ]
        if watch.paused:
            lines.append(
                "Note: the circuit watch is paused, so it hands nothing over: the breakers stay "
                "open until `recoveryctl watch-breakers enable`."
            )
        self.output.notice("\n".join(lines))

    async def _watch_for(self, seconds: float) -> None:
        """Refresh the table for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self.refresh()
            await asyncio.sleep(min(REFRESH_INTERVAL, max(0.0, deadline - time.monotonic())))

    async def _until_all_open(self) -> None:
        """Refresh the table until every demo breaker is open."""
        deadline = time.monotonic() + OPEN_TIMEOUT
        while not all(row.breaker == "open" for row in await self.refresh()):
            if time.monotonic() > deadline:
                raise CliError(f"the demo breakers did not all open within {OPEN_TIMEOUT:g} s")
            await asyncio.sleep(CALL_INTERVAL)

    async def _until_recovered(self, triggered: float) -> list[Row]:
        """Refresh the table; return once every automatic service is back (with the flag)."""
        while True:
            rows = await self.refresh()
            if self._recovered(rows) and await self._calls_pass():
                if self.args.exit_when_recovered:
                    return rows
                self._tell_once("recovered", self.outcome_text(rows) + " Ctrl-C ends the demo.")
            waited = time.monotonic() - triggered
            if waited > NO_RECOVERY_HINT_AFTER and all(r.recovery == "-" for r in rows):
                self._tell_once(
                    "no-recovery",
                    f"No demo recovery yet. Does the worker use the same circuit store "
                    f"({redact(self.store_url)})? `recoveryctl watch-breakers status` shows the watch's runs.",
                )
            await asyncio.sleep(REFRESH_INTERVAL)

    def _recovered(self, rows: list[Row]) -> bool:
        """Return True when every automatic service's recovery succeeded and its breaker closed."""
        return all(
            r.recovery == "succeeded" and r.breaker == "closed"
            for r in rows
            if r.service not in MANUAL_NAMES
        )

    async def _calls_pass(self) -> bool:
        """Return True when a call through each automatic service's breaker works now."""
        assert self.caller is not None
        for service in self.services:
            if not service.spec.manual and not await asyncio.to_thread(self.caller.call, service):
                return False
        return True

    async def refresh(self) -> list[Row]:
        """Read the breakers and the coordinator, print the table if it changed, return it."""
        self._check_embedded()
        status = await self._status()
        records = await asyncio.to_thread(self.store.get_all_states)
        calls = self.caller.last if self.caller else {}
        running = [
            s.name for s in self.services
            if status["services"].get(s.name, {}).get("state") == "in_progress"
        ]
        live = dict(zip(running, await asyncio.gather(*(self._live(n) for n in running))))
        rows = []
        for service in self.services:
            recovery, detail = recovery_cell(
                service.name, status, self.seen_before, live.get(service.name)
            )
            record = records.get(service.name)
            rows.append(
                Row(
                    service=service.name,
                    priority=service.spec.priority,
                    health="up" if service.is_up() else "down",
                    breaker=record.state.value if record else "-",
                    recovery=recovery,
                    last_call=calls.get(service.name, "-"),
                    detail=detail,
                )
            )
            if service.spec.manual and recovery == "awaiting_manual":
                self._tell_once(
                    "approve",
                    f"{service.name} waits for an operator (strategy MANUAL). In another "
                    f"terminal, approve one attempt:\n  {approve_command(service.name)}",
                )
        self.output.rows(rows)
        self.last_rows = rows
        return rows

    def outcome_text(self, rows: list[Row]) -> str:
        """Return the line that says the automatic services are back, and what payments does."""
        automatic = ", ".join(s.name for s in SPECS if not s.manual)
        text = (
            f"Recovered in {self.output.elapsed():.1f} s: {automatic} (recoveries succeeded, "
            "breakers closed, calls through the breakers pass)."
        )
        for row in rows:
            if row.service in MANUAL_NAMES:
                text += (
                    f"\nTo approve {row.service}'s next attempt, in another terminal:\n  "
                    f"{approve_command(row.service)}\n"
                    if row.recovery == "awaiting_manual"
                    else f" {row.service}: recovery {row.recovery}, breaker {row.breaker}."
                )
        return text

    def summary(self, rows: list[Row]) -> dict[str, Any]:
        """Return the outcome for scripts (``--json``)."""
        return {
            "recovered": True,
            "elapsed_seconds": round(self.output.elapsed(), 1),
            "services": [asdict(r) for r in rows],
        }

    def _tell_once(self, key: str, text: str) -> None:
        if key not in self._told:
            self._told.add(key)
            self.output.notice(text)

    def _check_embedded(self) -> None:
        if self.embedded is not None and self.embedded.exited():
            raise CliError(f"the embedded Temporal server or worker exited (see {DEMO_LOG})")

    async def _live(self, service: str) -> RecoveryStatus | None:
        """Return a running recovery's own status (its phase); None if it cannot say now."""
        assert self.client is not None
        try:
            return await asyncio.wait_for(
                recovery_status(self.client, service), LIVE_QUERY_TIMEOUT
            )
        except (TimeoutError, RPCError):
            return None  # the coordinator's entry still gives the state

    async def _status(self) -> dict[str, Any]:
        """Return the coordinator's status; a query needs a worker, so it is bounded."""
        assert self.coordinator is not None
        try:
            status = await asyncio.wait_for(
                self.coordinator.get_recovery_status(), QUERY_TIMEOUT
            )
        except TimeoutError:
            raise CliError(
                f"the coordinator did not answer within {QUERY_TIMEOUT:g} s: is a worker running?"
            ) from None
        if status is None:
            raise CliError(f"no coordinator {self.coordinator.workflow_id!r}: is a worker running?")
        return status

    # ----- undoing it ---------------------------------------------------------------

    async def _retire(self, reason: str) -> list[str]:
        """Cancel the demo services' unfinished recoveries and forget their breakers.

        Returns the services whose recoveries were cancelled.
        """
        assert self.client is not None and self.coordinator is not None
        cancelled: list[str] = []
        for _ in range(RETIRE_ROUNDS):
            await asyncio.to_thread(self._forget_breakers)
            await self._until_watch_runs_end()
            services = (await self._status())["services"]
            unfinished = [
                name for name in sorted(DEMO_NAMES)
                if services.get(name, {}).get("state", "idle") != "idle"
            ]
            if not unfinished:
                return cancelled
            runs = [await self._latest_run(name) for name in unfinished]
            for name in unfinished:
                with suppress(RecoveryOrchestratorError):  # it finished meanwhile
                    await self.coordinator.cancel_recovery(
                        CancelRecoveryInput(service_name=name, reason=reason)
                    )
            await self._until_closed([run for run in runs if run is not None])
            cancelled += [n for n in unfinished if n not in cancelled]
        await asyncio.to_thread(self._forget_breakers)
        return cancelled

    async def _retire_at_exit(self) -> None:
        cancelled = await self._retire("the demo ended")
        if cancelled:
            self.output.notice(f"Cancelled the unfinished recoveries of {', '.join(cancelled)}.")
        self.output.notice("Forgot the demo breakers.")

    def _forget_breakers(self) -> None:
        for name in sorted(DEMO_NAMES):
            self.store.forget(name)

    async def _until_watch_runs_end(self) -> None:
        """Wait (bounded) for the watch's look in flight: it may have listed a demo breaker
        before it was forgotten, and would hand it over after its recovery is cancelled.
        ``look_now`` answers once a look that ends after it arrived has ended."""
        assert self.client is not None
        with suppress(WatchNotRunning, TimeoutError):
            await asyncio.wait_for(look_now(self.client), CLEANUP_STEP_TIMEOUT)

    async def _latest_run(self, service: str) -> WorkflowRun | None:
        """Return the service's running recovery, None if none runs (a queued one, say)."""
        assert self.client is not None
        workflow_id = recovery_workflow_id(service)
        try:
            found = await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
            return None
        if found.status is not WorkflowExecutionStatus.RUNNING:
            return None
        return WorkflowRun(workflow_id, found.run_id)

    async def _until_closed(self, runs: list[WorkflowRun]) -> None:
        """Wait (bounded) until these workflow runs have closed."""
        assert self.client is not None
        deadline = time.monotonic() + QUERY_TIMEOUT
        for run in runs:
            handle = self.client.get_workflow_handle(run.workflow_id, run_id=run.run_id)
            while time.monotonic() < deadline:
                if (await handle.describe()).status is not WorkflowExecutionStatus.RUNNING:
                    break
                await asyncio.sleep(0.2)

    async def _quietly(
        self, action: Callable[[], Awaitable[Any]], what: str, done: str = ""
    ) -> None:
        """Run one cleanup step; a failure is one line, and the other steps still run."""
        try:
            await asyncio.wait_for(action(), CLEANUP_STEP_TIMEOUT)
        except Exception as err:  # cleanup goes on whatever one step met
            self.output.notice(f"Could not {what}: {' '.join(str(err).split()) or type(err).__name__}")
            self.undone = "some of what it changed is left (see above)."
        else:
            if done:
                self.output.notice(done)


def add_demo_arguments(command: click.Command) -> None:
    """Add the ``demo`` subcommand's options."""
    command.params[:0] = [
        click.Option(
            ["--exit-when-recovered"], is_flag=True,
            help="exit 0 once every automatic demo service is recovered (default: run until Ctrl-C)",
        ),
        click.Option(
            ["--timeout", "demo_timeout"], type=positive_seconds, metavar="SECONDS",
            help="with --exit-when-recovered: exit 1 unless recovered this many seconds after the start",
        ),
        click.Option(
            ["--store"], help="circuit store URL (default $RECOVERY_CIRCUIT_STORE, else the SQLite file)"
        ),
        click.Option(
            ["--ui-port"], type=click.IntRange(1, 65535), metavar="PORT",
            help="the Web UI's port (default: the server's port + 1000, e.g. 8233)",
        ),
    ]


async def cmd_demo(ctx: Context) -> Any:
    """Run the live demo until the services recover (``--exit-when-recovered``) or Ctrl-C."""
    args = ctx.args
    if args.demo_timeout is not None and not args.exit_when_recovered:
        raise ValueError("--timeout needs --exit-when-recovered")
    store_url = args.store or store_url_from_env()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        store = open_store(store_url)
        demo = Demo(ctx, store, store_url)
        try:
            recovered = await _show(demo, stop, args.demo_timeout)
        finally:
            store.close()
    except (sqlite3.Error, redis.RedisError) as err:  # as `recoveryctl breakers` reports it
        raise Unreachable(redact(f"cannot reach the circuit store {store_url}: {err}")) from None
    if recovered:
        demo.output.notice(f"Demo over; {demo.undone}")
        return None
    if stop.is_set():
        if args.exit_when_recovered:
            raise CliError("stopped before the demo services recovered")
        demo.output.notice(f"Demo stopped; {demo.undone}")
        return None
    waiting = "; ".join(
        f"{r.service}: recovery {r.recovery}, breaker {r.breaker}"
        for r in demo.last_rows
        if r.service not in MANUAL_NAMES
    )
    raise CliError(
        f"the demo services did not recover within {args.demo_timeout:g} s "
        f"({waiting or 'still starting'})"
    )


async def _show(demo: Demo, stop: asyncio.Event, timeout: float | None) -> bool:
    """Run the demo until it is done, stopped or out of time; undo it in every case.

    Returns True when the services recovered; raises what the demo raised.
    """
    async with AsyncExitStack() as undo:
        show = asyncio.create_task(demo.run(undo))
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait(
                {show, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopped.cancel()
            if not show.done():
                show.cancel()
                await asyncio.gather(show, return_exceptions=True)
        if not show.cancelled() and show.exception() is None:
            demo.output.outcome(demo.summary(show.result()), demo.outcome_text(show.result()))
        demo.output.notice("Cleaning up…")
        if show.cancelled():
            return False
        show.result()  # the demo's error: the stack undoes everything as it propagates
        return True
