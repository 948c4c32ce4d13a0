"""``pause`` and ``resume``: holding automation off a service for a while."""

from __future__ import annotations

import click

from starter.cli.context import Context
from starter.cli.options import command, service_argument
from starter.cli.values import duration_seconds
from workflows.coordinator_models import (
    DEFAULT_PAUSE_SECONDS,
    PauseServiceInput,
    PauseServiceResult,
    ResumeServiceInput,
    ResumeServiceResult,
)
from workflows.models import validate_service_name


@command(
    "pause",
    "Hold automatic recovery off a service for a while",
    [
        'recoveryctl pause api --for 2h --reason "db migration"',
        "recoveryctl pause api --json",
    ],
    details=(
        "While paused, nothing automatic (the circuit watch or any other trigger) "
        "schedules the service; an operator still can. Every pause ends by itself; "
        "pausing again replaces it; `recoveryctl resume` lifts it sooner."
    ),
)
@service_argument()
@click.option(
    "--for",
    "duration",
    type=duration_seconds,
    metavar="DURATION",
    default=f"{DEFAULT_PAUSE_SECONDS // 3600}h",
    show_default=True,
    help="how long: 90s, 30m, 2h, 1d or combinations (1h30m); at most 30d",
)
@click.option(
    "--reason",
    default="paused by operator",
    show_default=True,
    help="why (shown in `recoveryctl status`)",
)
async def pause(ctx: Context, service: str, duration: int, reason: str) -> PauseServiceResult:
    """Hold automation off a service for a while (an operator still may act)."""
    if not reason.strip():
        raise ValueError("--reason: give a reason, or leave the option out")
    request = PauseServiceInput(
        service_name=validate_service_name(service), duration_s=duration, reason=reason
    )
    coordinator = await ctx.coordinator()
    return await coordinator.pause_service(request)


@command(
    "resume",
    "Let automation schedule a service again",
    ["recoveryctl resume api", "recoveryctl resume api --json"],
    details=(
        "Lifts a pause, the cool-down after a failed recovery, or the hold an "
        "operator's cancel left, and says which; nothing to lift is no error."
    ),
)
@service_argument()
async def resume(ctx: Context, service: str) -> ResumeServiceResult:
    """Lift a service's pause, failure cool-down or cancel hold."""
    coordinator = await ctx.coordinator()
    request = ResumeServiceInput(service_name=validate_service_name(service))
    return await coordinator.resume_service(request)


COMMANDS = [pause, resume]
