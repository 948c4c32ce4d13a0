"""``recoveryctl breakers`` and ``recoveryctl watch-breakers``: the breakers and their watch.

``breakers`` reads the breaker store directly (``RECOVERY_CIRCUIT_STORE``, or
``--store``), the same store the services' pybreaker breakers and the workers use,
so it works while Temporal is down too; when some breaker is open and the circuit
watch runs, a WATCH column says what the watch's last look did with it (handed over,
or why not; "no health check" where only the service's own calls can close it).
``watch-breakers`` pauses, resumes or describes the long-lived ``CircuitWatch`` the
worker keeps (its updates ``pause`` / ``resume``, its query ``watch_status``).
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from rich.console import Console

from activities.breaker_store import BreakerRecord, BreakerState, store_url_from_env
from activities.redaction import redact
from activities.sqlite_store import SQLiteBreakerStore
from activities.stores import open_store
from starter import render
from starter.cli_context import CliError, Context, Unreachable
from starter.watch_control import (
    WatchNotRunning,
    WatchState,
    describe_watch,
    latest_look,
    set_watch_paused,
)
from workflows.circuit_watch_models import MAX_NOTE, WatchResult, watch_workflow_id
from workflows.constants import TASK_QUEUE

# How long `breakers` waits for Temporal to say what the watch did: the listing itself
# needs only the store, so a server that is down costs at most this.
WATCH_LOOKUP_SECONDS = 2.0


@dataclass
class WatchedBreakers(render.Breakers):
    """The breakers, and the watch's last look at the open ones."""

    look: WatchResult | None = None

    def rows(self) -> list[dict[str, Any]]:
        """Each breaker as JSON, with the watch's verdict on an open one (else null)."""
        looked_at = self.look.looked_at.isoformat() if self.look and self.look.looked_at else None
        return [
            {**row, "watch": self.verdict(record), "watch_looked_at": looked_at}
            for row, record in zip(super().rows(), self.records, strict=True)
        ]

    def verdict(self, record: BreakerRecord) -> str | None:
        """What the watch's last look did with this breaker, if it saw it open."""
        return self.look.verdict(record.service_name) if self.look is not None else None

    def text(self) -> str:
        """The table people read, with the WATCH column."""
        looked = self.look.looked_at if self.look else None
        table = render.table(  # the same borderless table as the rest
            ["SERVICE", "STATE", "FAILURES", "SUCCESSES", "OPEN FOR", "LAST OPENED", "WATCH"],
            [
                [
                    record.service_name,
                    record.state.value,
                    record.fail_counter,
                    record.success_counter,
                    render._duration(self.open_for(record)),  # noqa: SLF001
                    render._time(record.opened_at.isoformat() if record.opened_at else None),  # noqa: SLF001
                    self.verdict(record) or "",
                ]
                for record in self.records
            ],
        )
        out = Console(file=io.StringIO(), width=render.PIPE_WIDTH, color_system=None, soft_wrap=True)
        with out.capture() as captured:
            out.print(f"store: {self.store}")
            out.print(f"watch: last look {_when(looked)}")
            out.print("")
            if table is not None:
                out.print(table)
        return "\n".join(line.rstrip() for line in captured.get().rstrip("\n").splitlines())


async def cmd_breakers(ctx: Context) -> Any:
    """List every breaker with its state, counters, time since it opened and the watch's verdict."""
    url = ctx.args.store or store_url_from_env()
    try:
        records = await asyncio.to_thread(_read_all, url)
    except ValueError:
        raise  # a bad store URL: exit 2
    except Exception as err:  # the store is down: redis-py's ConnectionError, sqlite3's errors
        raise Unreachable(redact(f"cannot reach the circuit store {url}: {err}")) from None
    now = datetime.now(timezone.utc)
    look = None
    if any(r.state is not BreakerState.CLOSED for r in records):
        look = await _watch_look(ctx)
    if look is None:
        return render.Breakers(records=records, store=redact(url), now=now)
    view = WatchedBreakers(records=records, store=redact(url), now=now, look=look)
    return view if ctx.args.json else view.text()


async def _watch_look(ctx: Context) -> WatchResult | None:
    """The running watch's last look; None when Temporal or the watch is not there."""
    try:
        client = await asyncio.wait_for(ctx.client(), WATCH_LOOKUP_SECONDS)
        return await asyncio.wait_for(
            latest_look(client, workflow_id=_watch_id(ctx)), WATCH_LOOKUP_SECONDS
        )
    except Exception:  # no server, no watch, a bad profile: the listing stands on its own
        return None


def _read_all(url: str) -> list[Any]:
    if url.startswith("sqlite:"):
        # Listing must not create a store: a mistyped path would show "no breakers yet".
        path = SQLiteBreakerStore.path_from_url(url)
        if not path.is_file():
            raise ValueError(
                f"no breaker store at {path} (from {url}): is the path right, and has a "
                "worker or a service written to it yet?"
            )
    store = open_store(url)
    try:
        return sorted(store.get_all_states().values(), key=lambda r: r.service_name)
    finally:
        store.close()


async def cmd_watch_breakers(ctx: Context) -> Any:
    """Enable, disable or describe the circuit watch (the worker's long-lived ``CircuitWatch``)."""
    action = ctx.args.watch_command
    note = ""
    if action in ("enable", "disable"):
        note = ctx.args.note or f"{action}d with recoveryctl"
        if len(note) > MAX_NOTE:  # bad input fails before any network wait
            raise ValueError(f"--note is {len(note)} characters; at most {MAX_NOTE}")
    client = await ctx.client()
    workflow_id = _watch_id(ctx)
    try:
        if action in ("enable", "disable"):
            await set_watch_paused(client, action == "disable", note, workflow_id=workflow_id)
        state = await describe_watch(client, workflow_id=workflow_id)
    except WatchNotRunning as err:
        raise CliError(
            f"{err}: a recovery-worker starts {workflow_id!r} when it starts (is one running?)"
        ) from None
    return state.to_json() if ctx.args.json else watch_text(state)


def _watch_id(ctx: Context) -> str:
    """The watch the workers of this task queue keep (``recovery-circuit-watch`` on the product's)."""
    return watch_workflow_id(getattr(ctx.args, "task_queue", None) or TASK_QUEUE)


def watch_text(state: WatchState) -> str:
    """What ``watch-breakers`` shows people."""
    settings = state.settings
    head = f"circuit watch: {'PAUSED' if state.paused else 'running'}" + (
        f" ({state.note})" if state.note else ""
    )
    if state.paused:
        head += f" since {_when(state.paused_since)}"
    look = state.last_look
    lines = [
        head,
        f"workflow: {state.workflow_id}   every: {state.interval_seconds or 0:g} s   looks: {state.looks}",
        f"last look: {_when(look.looked_at if look else None)}"
        + (f": {look.summary()}" if look else ""),
    ]
    if look is not None:
        width = max((len(name) for name in look.open_breakers), default=0)
        lines += [f"  {name:<{width}}  {look.verdict(name)}" for name in look.open_breakers]
    lines += [
        "next look: " + (", ".join(_when(t) for t in state.next_runs) or "-"),
        f"services file: {settings.source or 'none'} ({len(settings.services)} services; "
        f"unlisted breakers {'recovered with [defaults]' if settings.recover_unlisted else 'ignored'})",
    ]
    return "\n".join(lines)


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
