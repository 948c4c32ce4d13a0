"""``configure``: the coordinator's settings, slots and refused requests."""

from __future__ import annotations

from typing import Any

import click

from starter.cli.context import Context
from starter.cli.options import command
from workflows.coordinator_models import ConfigureInput


@command(
    "configure",
    "Show settings and refused requests; change slots or history size; --start after a stop",
    [
        "recoveryctl configure",
        "recoveryctl configure --max-concurrent 3",
        "recoveryctl configure --start",
    ],
)
@click.option("--max-concurrent", type=int, help="recoveries running at once")
@click.option("--history-size", type=int, help="finished recoveries kept")
@click.option("--start", is_flag=True, help="report running again after a stop")
async def configure(
    ctx: Context, max_concurrent: int | None, history_size: int | None, start: bool
) -> Any:
    """Change the coordinator's slots or history size, or start it again after a stop.

    With no option, only show the settings, the slots in use and the requests the
    coordinator refused lately (``rejected_signals``): a read, not an update.
    """
    if max_concurrent is None and history_size is None and not start:
        coordinator = await ctx.coordinator()
        return await ctx.answered(await coordinator.get_configuration())
    request = ConfigureInput(
        max_concurrent_recoveries=max_concurrent,
        recent_history_size=history_size,
        orchestrator_running=True if start else None,
    )
    coordinator = await ctx.coordinator()
    return await coordinator.configure(request)


COMMANDS = [configure]
