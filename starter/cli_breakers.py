"""``recoveryctl breakers`` and ``recoveryctl watch-breakers``: the breakers and their watch.

``breakers`` reads the breaker store directly (``RECOVERY_CIRCUIT_STORE``, or
``--store``), the same store the services' pybreaker breakers and the workers use,
so it works while Temporal is down too. ``watch-breakers`` pauses, resumes or
describes the Temporal Schedule that runs ``CircuitWatch``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

from temporalio.service import RPCError, RPCStatusCode

from activities.breaker_store import store_url_from_env
from activities.sqlite_store import SQLiteBreakerStore
from activities.stores import open_store
from starter import render
from starter.cli_context import CliError, Context, Unreachable
from starter.watch_schedule import describe_watch, set_watch_paused
from workflows.constants import CIRCUIT_WATCH_SCHEDULE_ID

# What the Web UI shows beside a paused schedule: a sentence, not a document.
MAX_NOTE = 500


async def cmd_breakers(ctx: Context) -> Any:
    """List every breaker with its state, counters and time since it opened."""
    url = ctx.args.store or store_url_from_env()
    try:
        records = await asyncio.to_thread(_read_all, url)
    except ValueError:
        raise  # a bad store URL: exit 2
    except Exception as err:  # the store is down: redis-py's ConnectionError, sqlite3's errors
        raise Unreachable(f"cannot reach the circuit store {url}: {err}") from None
    return render.Breakers(records=records, store=url, now=datetime.now(timezone.utc))


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
    """Enable, disable or describe the circuit watch (its Temporal Schedule)."""
    action = ctx.args.watch_command
    note = ""
    if action in ("enable", "disable"):
        note = ctx.args.note or f"{action}d with recoveryctl"
        if len(note) > MAX_NOTE:  # bad input fails before any network wait
            raise ValueError(f"--note is {len(note)} characters; at most {MAX_NOTE}")
    client = await ctx.client()
    try:
        if action in ("enable", "disable"):
            await set_watch_paused(client, action == "disable", note)
        return render.Watch(await describe_watch(client))
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise CliError(
                f"no schedule {CIRCUIT_WATCH_SCHEDULE_ID!r}: a recovery-worker creates it "
                "when it starts (is one running?)"
            ) from None
        raise
