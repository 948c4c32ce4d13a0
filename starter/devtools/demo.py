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
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import redis
from temporalio.client import Client

from activities.redaction import redact
from recovery_breakers.store import CircuitBreakerStore
from recovery_breakers.stores import open_store, store_url_from_env
from starter.cli.context import Context, configured_target
from starter.cli.exit_codes import CliError, Unreachable
from starter.client.coordinator_client import CoordinatorClient
from starter.client.watch_control import WatchState, look_now, replace_watch_settings
from starter.devtools.demo_cleanup import CLEANUP_STEP_TIMEOUT, Retirement
from starter.devtools.demo_orchestrator import (
    await_watch,
    coordinator_status,
    live_status,
    with_demo,
    without_demo,
)
from starter.devtools.demo_services import (
    CALL_INTERVAL,
    FAIL_MAX,
    MANUAL_NAMES,
    SPECS,
    Caller,
    DemoService,
    serving,
)
from starter.devtools.demo_view import (
    Output,
    Row,
    approve_command,
    demo_row,
    guide_text,
    history_key,
)
from starter.devtools.dev import (
    STATE_DIR,
    DevServerError,
    DevSetupError,
    Embedded,
    embedded_temporal,
    is_loopback,
    split_address,
)
from workflows.models import RecoveryStatus

REFRESH_INTERVAL = 1.0
# Working calls before the break, so the closed breakers are seen first.
HEALTHY_PHASE = 1.5
OPEN_TIMEOUT = 30.0
# A worker just started (by us, or in another terminal) needs a moment to create the watch.
WORKER_WAIT_EMBEDDED = 60.0
WORKER_WAIT = 10.0
# After this long without any demo recovery, say what to check.
NO_RECOVERY_HINT_AFTER = 20.0
DEMO_LOG = STATE_DIR / "demo.log"


@dataclass(frozen=True)
class DemoOptions:
    """The ``demo`` command's options."""

    exit_when_recovered: bool = False
    timeout: float | None = None  # with exit_when_recovered: fail unless recovered by then
    store: str | None = None  # the circuit store's URL (default: RECOVERY_CIRCUIT_STORE)
    ui_port: int | None = None  # the Web UI's (default: the server's port + 1000)


class Demo:
    """One run of the demo; ``run`` does the show, the exit stack undoes it."""

    def __init__(
        self, ctx: Context, options: DemoOptions, store: CircuitBreakerStore, store_url: str
    ) -> None:
        self.ctx = ctx
        self.options = options
        self.task_queue = ctx.options.task_queue
        self.store = store
        self.store_url = store_url
        self.output = Output(ctx.options.json)
        self.embedded: Embedded | None = None
        self.client: Client | None = None
        self.coordinator: CoordinatorClient | None = None
        self.retirement: Retirement | None = None
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
        wait = WORKER_WAIT_EMBEDDED if self.embedded else WORKER_WAIT
        watch = await await_watch(client, self.task_queue, wait, self._check_embedded)
        original = without_demo(watch.settings)
        self.coordinator = CoordinatorClient(
            client, workflow_id=original.coordinator_workflow_id, task_queue=self.task_queue
        )
        self.retirement = Retirement(client, self.coordinator, self.store, self._status)
        status = await self._status()
        if not status["orchestrator_running"]:
            raise CliError(
                "the orchestrator is stopped: `recoveryctl configure --start` starts it again"
            )
        self.seen_before = frozenset(history_key(r) for r in status["recent_history"])
        leftovers = await self.retirement.retire("an earlier demo left it")
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
            address = configured_target()
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
        if self.options.ui_port is not None:
            return self.options.ui_port
        return (port or 7233) + 1000

    def _guide(self, watch: WatchState) -> None:
        """Print what the demo does and where to look while it runs."""
        assert self.client is not None
        host, port = split_address(self.client.service_client.config.target_host)
        ui = f"http://{'localhost' if is_loopback(host) else host}:{self._ui_port(port)}"
        namespace = self.client.namespace
        store_flag = f" --store {self.options.store}" if self.options.store else ""
        self.output.notice(
            guide_text(self.services, self.store_url, ui, namespace, store_flag, watch.paused)
        )

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
                if self.options.exit_when_recovered:
                    return rows
                self._tell_once("recovered", self.output.outcome_text(rows) + " Ctrl-C ends the demo.")
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
        rows = [
            demo_row(s, status, self.seen_before, live.get(s.name), records.get(s.name), calls)
            for s in self.services
        ]
        for row in rows:
            if row.service in MANUAL_NAMES and row.recovery == "awaiting_manual":
                self._tell_once(
                    "approve",
                    f"{row.service} waits for an operator (strategy MANUAL). In another "
                    f"terminal, approve one attempt:\n  {approve_command(row.service)}",
                )
        self.output.rows(rows)
        self.last_rows = rows
        return rows

    def _tell_once(self, key: str, text: str) -> None:
        if key not in self._told:
            self._told.add(key)
            self.output.notice(text)

    def _check_embedded(self) -> None:
        if self.embedded is not None and self.embedded.exited():
            raise CliError(f"the embedded Temporal server or worker exited (see {DEMO_LOG})")

    async def _live(self, service: str) -> RecoveryStatus | None:
        assert self.client is not None
        return await live_status(self.client, service)

    async def _status(self) -> dict[str, Any]:
        assert self.coordinator is not None
        return await coordinator_status(self.coordinator)

    # ----- undoing it ---------------------------------------------------------------

    async def _retire_at_exit(self) -> None:
        assert self.retirement is not None
        cancelled = await self.retirement.retire("the demo ended")
        if cancelled:
            self.output.notice(f"Cancelled the unfinished recoveries of {', '.join(cancelled)}.")
        self.output.notice("Forgot the demo breakers.")

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


async def run_demo(ctx: Context, options: DemoOptions) -> None:
    """Run the live demo until the services recover (``--exit-when-recovered``) or Ctrl-C."""
    store_url = options.store or store_url_from_env()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        store = open_store(store_url)
        demo = Demo(ctx, options, store, store_url)
        try:
            recovered = await _show(demo, stop, options.timeout)
        finally:
            store.close()
    except (sqlite3.Error, redis.RedisError) as err:  # as `recoveryctl breakers` reports it
        raise Unreachable(redact(f"cannot reach the circuit store {store_url}: {err}")) from None
    if recovered:
        demo.output.notice(f"Demo over; {demo.undone}")
        return
    if stop.is_set():
        if options.exit_when_recovered:
            raise CliError("stopped before the demo services recovered")
        demo.output.notice(f"Demo stopped; {demo.undone}")
        return
    waiting = "; ".join(
        f"{r.service}: recovery {r.recovery}, breaker {r.breaker}"
        for r in demo.last_rows
        if r.service not in MANUAL_NAMES
    )
    raise CliError(
        f"the demo services did not recover within {options.timeout:g} s "
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
            demo.output.outcome(show.result())
        demo.output.notice("Cleaning up…")
        if show.cancelled():
            return False
        show.result()  # the demo's error: the stack undoes everything as it propagates
        return True
