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
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import click
from rich.console import Group
from rich.text import Text

from activities.redaction import redact
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from recovery_breakers.store import BreakerRecord, BreakerState
from recovery_breakers.stores import open_store, store_url_from_env
from starter.cli.context import Context
from starter.cli.exit_codes import CliError, Unreachable
from starter.cli.options import command, group
from starter.cli.render import plain_text
from starter.cli.text import clock, compact_duration, table
from starter.cli.views import Breakers
from starter.client.watch_control import (
    WatchNotRunning,
    WatchState,
    describe_watch,
    latest_look,
    set_watch_paused,
)
from workflows.circuit_watch_models import MAX_NOTE, WatchResult, watch_workflow_id

# How long `breakers` waits for Temporal to say what the watch did: the listing itself
# needs only the store, so a server that is down costs at most this.
WATCH_LOOKUP_SECONDS = 2.0


@dataclass
class WatchedBreakers(Breakers):
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
        shown = table(  # the same borderless table as the rest
            ["SERVICE", "STATE", "FAILURES", "SUCCESSES", "OPEN FOR", "LAST OPENED", "WATCH"],
            [
                [
                    record.service_name,
                    record.state.value,
                    record.fail_counter,
                    record.success_counter,
                    compact_duration(self.open_for(record)),
                    clock(record.opened_at.isoformat() if record.opened_at else None),
                    self.verdict(record) or "",
                ]
                for record in self.records
            ],
        )
        head = [Text(f"store: {self.store}"), Text(f"watch: last look {_when(looked)}"), Text("")]
        return plain_text(Group(*head, *([] if shown is None else [shown])))


@command(
    "breakers",
    "List every circuit breaker: state, counters, open for",
    [
        "recoveryctl breakers",
        "recoveryctl breakers --store redis://localhost:6379/0 --json",
    ],
)
@click.option("--store", help="store URL (default $RECOVERY_CIRCUIT_STORE, else the SQLite file)")
async def breakers(ctx: Context, store: str | None) -> Any:
    """List every breaker with its state, counters, time since it opened and the watch's verdict."""
    url = store or store_url_from_env()
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
        return Breakers(records=records, store=redact(url), now=now)
    view = WatchedBreakers(records=records, store=redact(url), now=now, look=look)
    return view if ctx.options.json else view.text()


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


def _watch_command(action: str, summary: str, note_example: str = "") -> click.Command:
    """Return ``watch-breakers ACTION``: ``enable`` and ``disable`` take a ``--note``."""

    async def run(ctx: Context, note: str | None = None) -> Any:
        return await _watch_breakers(ctx, action, note)

    if action != "status":
        run = click.option("--note", help="why (shown by watch-breakers status and the Web UI)")(run)
    return command(action, summary, [f"recoveryctl watch-breakers {action}{note_example}"])(run)


watch_breakers = group(
    "watch-breakers",
    "Enable, disable or show the circuit watch",
    [
        'recoveryctl watch-breakers disable --note "db failover"',
        "recoveryctl watch-breakers status",
    ],
    [
        _watch_command("enable", "Resume the watch"),
        _watch_command(
            "disable",
            "Pause the watch (nothing new is scheduled from open breakers)",
            ' --note "db failover"',
        ),
        _watch_command("status", "Show whether it runs, how often, and with which services file"),
    ],
)


async def _watch_breakers(ctx: Context, action: str, note: str | None) -> Any:
    """Enable, disable or describe the circuit watch (the worker's long-lived ``CircuitWatch``)."""
    said = ""
    if action in ("enable", "disable"):
        said = note or f"{action}d with recoveryctl"
        if len(said) > MAX_NOTE:  # bad input fails before any network wait
            raise ValueError(f"--note is {len(said)} characters; at most {MAX_NOTE}")
    client = await ctx.client()
    workflow_id = _watch_id(ctx)
    try:
        if action in ("enable", "disable"):
            await set_watch_paused(client, action == "disable", said, workflow_id=workflow_id)
        state = await describe_watch(client, workflow_id=workflow_id)
    except WatchNotRunning as err:
        raise CliError(
            f"{err}: a recovery-worker starts {workflow_id!r} when it starts (is one running?)"
        ) from None
    return state.to_json() if ctx.options.json else watch_text(state)


def _watch_id(ctx: Context) -> str:
    """The watch the workers of this task queue keep (``recovery-circuit-watch`` on the product's)."""
    return watch_workflow_id(ctx.options.task_queue)


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


COMMANDS = [breakers, watch_breakers]
