"""``status``, ``history``, ``watch``: what the orchestrator is doing, and has done."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from datetime import datetime, timezone
from typing import Any, TypeVar

import click
from rich.console import Group
from rich.live import Live
from rich.text import Text
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from starter.cli import render
from starter.cli.context import Context
from starter.cli.exit_codes import UnknownService
from starter.cli.listing import LIST_LIMIT, uncoordinated_recoveries
from starter.cli.options import command, service_argument
from starter.cli.values import positive_seconds
from starter.cli.views import Attempts, RecentHistory, Status
from starter.client.recoveries import recovery_attempts, recovery_status
from workflows.coordinator_models import StatusPageInput
from workflows.models import RecoveryState, validate_service_name

T = TypeVar("T")


@command(
    "status",
    "Show the orchestrator's status, or one recovery's",
    ["recoveryctl status", "recoveryctl status api --json"],
    details=(
        "The overall status also lists running recoveries the coordinator does not "
        "know (started straight with the temporal CLI), marked as not coordinated."
    ),
)
@service_argument(required=False)
async def status(ctx: Context, service: str | None) -> Any:
    """Show the orchestrator's status, or one recovery's."""
    if service is not None:  # given, even empty: a name to check, not "all"
        return await _one_recovery(ctx, service, recovery_status, when_queued=lambda entry: entry)
    return await status_view(ctx)


@command(
    "history",
    "List recent recoveries, or one recovery's attempts",
    ["recoveryctl history", "recoveryctl history api --json"],
)
@service_argument(required=False)
async def history(ctx: Context, service: str | None) -> Attempts | RecentHistory:
    """List one recovery's attempts, or the recently finished recoveries."""
    if service is not None:
        attempts = await _one_recovery(
            ctx, service, recovery_attempts, when_queued=lambda _: []  # queued: none yet
        )
        return Attempts(attempts)
    return RecentHistory((await _overall_status(ctx))["recent_history"])


@command(
    "watch",
    "Show the status live, refreshed every few seconds",
    ["recoveryctl watch", "recoveryctl watch --interval 5 --count 3 --json"],
    details="Redrawn in place on a terminal; printed one after the other in a pipe.",
    bounded=False,
)
@click.option(
    "--interval",
    type=positive_seconds,
    metavar="SECONDS",
    default=2.0,
    show_default=True,
    help="seconds between refreshes",
)
@click.option("--count", type=click.IntRange(min=1), help="stop after this many refreshes")
async def watch(ctx: Context, interval: float, count: int | None) -> None:
    """Show the status every ``--interval`` seconds (``--count`` times, or until Ctrl-C).

    On a terminal the table is redrawn in place; in a pipe (or with ``--json``) each
    refresh is printed after the last, so a script reads whole documents.
    """
    out = render.console()
    as_json = ctx.options.json
    shown = 0
    with ExitStack() as stack:
        live = None
        if out.is_terminal and not as_json:
            live = stack.enter_context(Live(console=out, auto_refresh=False))
        while count is None or shown < count:
            view = await status_view(ctx)
            if live is None:
                render.show(view, as_json, out)
            else:
                at = datetime.now(timezone.utc).strftime("%H:%M:%S UTC")
                footer = Text(f"\n{at} · every {interval:g} s · Ctrl-C to stop", style="dim")
                live.update(Group(render.renderable(view), footer), refresh=True)
            shown += 1
            if count is None or shown < count:
                await asyncio.sleep(interval)


async def status_view(ctx: Context) -> Status:
    """Return the coordinator's status and the running recoveries it does not know."""
    overall = await _overall_status(ctx)
    try:
        listed, cut = await uncoordinated_recoveries(
            await ctx.client(), ctx.options.task_queue, overall["services"]
        )
    except RPCError as err:
        if err.status is RPCStatusCode.UNAVAILABLE:
            raise
        # The coordinator answered: its status stands even where visibility cannot list.
        return Status(overall, None, listing_note=err.message)
    return Status(overall, listed, LIST_LIMIT if cut else None)


async def _overall_status(ctx: Context) -> dict[str, Any]:
    coordinator = await ctx.coordinator()
    return await ctx.answered(await coordinator.get_recovery_status())


async def _queued_entry(ctx: Context, service: str) -> dict[str, Any] | None:
    """Return the coordinator's entry of a service it holds queued, with its name; else None."""
    coordinator = await ctx.coordinator()
    page = await coordinator.get_recovery_status_page(
        StatusPageInput(services=[service], limit=1, offset=0)
    )
    entry = (page or {}).get("services", {}).get(service)
    if not isinstance(entry, dict) or entry.get("state") != RecoveryState.SCHEDULED.value:
        return None
    return {"service_name": service, **entry}


async def _one_recovery(
    ctx: Context,
    service: str,
    read: Callable[[Client, str], Awaitable[T | None]],
    *,
    when_queued: Callable[[dict[str, Any]], T],
) -> T:
    """Read one recovery's query; a recovery that never ran is unknown.

    A service the coordinator holds queued has no run to ask yet (its last run, if any,
    is an older one): ``when_queued`` answers from the coordinator's entry instead.
    """
    service = validate_service_name(service)
    queued = await _queued_entry(ctx, service)
    if queued is not None:
        return when_queued(queued)
    found = await read(await ctx.client(), service)
    if found is None:
        await ctx.check_namespace()
        raise UnknownService(f"no recovery of {service!r} has ever run")
    return found


COMMANDS = [status, history, watch]
