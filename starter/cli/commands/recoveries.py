"""``schedule``, ``execute``, ``approve``, ``cancel``: acting on one service's recovery."""

from __future__ import annotations

from typing import Any

import click
from temporalio.service import RPCError

from starter.cli.context import Context
from starter.cli.exit_codes import CliError, UnknownService
from starter.cli.options import command, service_argument
from starter.cli.text import outcome
from starter.cli.values import POLICY_EXAMPLE, POLICY_HELP, policy_json
from starter.client.services_file import load_services_from_env
from starter.client.recoveries import (
    approve as approve_recovery,
    execute,
    execute_and_wait,
    recovery_attempts,
    recovery_handle,
    recovery_status,
)
from workflows.circuit_watch_models import ServiceSettings
from workflows.coordinator_models import (
    CancelRecoveryInput,
    CancelRecoveryResult,
    ExecuteRecoveryInput,
    ScheduleRecoveryInput,
    ScheduleRecoveryResult,
)
from workflows.errors import RecoveryOrchestratorError
from workflows.models import (
    CancelInput,
    RecoveryStatus,
    RecoveryStrategy,
    validate_service_name,
)
from workflows.service_recovery import ServiceRecovery

@command(
    "schedule",
    "Schedule a service for recovery",
    [
        "recoveryctl schedule api --strategy manual --priority 2",
        f"recoveryctl schedule db --policy {POLICY_EXAMPLE}",
    ],
)
@service_argument()
@click.option(
    "--strategy",
    type=click.Choice([s.value for s in RecoveryStrategy]),
    help="default: the services file's, else exponential_backoff",
)
@click.option(
    "--priority", type=int, help="lower is more urgent; default: the services file's, else 1"
)
@click.option("--policy", help=f"{POLICY_HELP}; default: the services file's")
async def schedule(
    ctx: Context, service: str, strategy: str | None, priority: int | None, policy: str | None
) -> ScheduleRecoveryResult:
    """Queue a recovery (or update its queue entry).

    What a flag does not say comes from the services file (``RECOVERY_SERVICES_FILE``,
    else ./recovery.toml), as for the circuit watch and the receiver: a service's health
    check and ``approvers`` hold however its recovery was asked for.
    """
    filed = _filed_settings(service)
    request = ScheduleRecoveryInput(
        service_name=service,
        strategy=strategy or filed.strategy,
        priority=filed.priority if priority is None else priority,
        policy=policy_json(policy, "--policy") if policy else filed.policy,
    )
    coordinator = await ctx.coordinator()
    return await coordinator.schedule_recovery(request)


def _filed_settings(service: str) -> ServiceSettings:
    """The services file's settings of ``service`` (its table, else ``[defaults]``).

    Raises:
        ServicesFileError: the file has problems (exit 2, naming them).
    """
    services = load_services_from_env()
    return services.services.get(service, services.defaults)


@command(
    "execute",
    "Start a scheduled recovery now and wait for its result",
    ["recoveryctl execute api", "recoveryctl execute api --no-wait --json"],
    details="A recovery that has already finished gives its final result.",
)
@service_argument()
@click.option("--operator", default="recoveryctl", show_default=True)
@click.option("--no-wait", is_flag=True, help="return once started")
async def execute_now(ctx: Context, service: str, operator: str, no_wait: bool) -> Any:
    """Start a scheduled recovery now (approve one attempt of a MANUAL one); wait for it.

    A recovery that has already finished gives its final result.
    """
    request = ExecuteRecoveryInput(service_name=validate_service_name(service), operator=operator)
    coordinator = await ctx.coordinator()
    if no_wait:
        return await execute(coordinator, request)
    return await execute_and_wait(coordinator, request)


@command(
    "approve",
    "Approve one attempt of a recovery awaiting an operator",
    ['recoveryctl approve api --operator alice --note "db is back"'],
    details="A recovery in any other state is refused (exit 1), naming the state it is in.",
)
@service_argument()
@click.option("--operator", required=True, help="who approves")
@click.option("--note", default="", help="why (kept in the attempt's record)")
async def approve(ctx: Context, service: str, operator: str, note: str) -> dict[str, Any]:
    """Approve one attempt of a recovery awaiting an operator.

    Unknown service: exit 2. A recovery in any other state: exit 1, naming that
    state and phase (the approval is not sent, or another came first).
    """
    service = validate_service_name(service)
    admitted = await approve_recovery(await ctx.coordinator(), service, operator, note)
    return {"approved": service, "operator": admitted.operator, "attempt": admitted.attempt}


@command(
    "cancel",
    "Cancel a queued or running recovery at once",
    ["recoveryctl cancel api --reason maintenance"],
)
@service_argument()
@click.option("--reason", default="cancelled by operator", show_default=True)
async def cancel(ctx: Context, service: str, reason: str) -> CancelRecoveryResult:
    """Cancel a queued or running recovery."""
    service = validate_service_name(service)
    coordinator = await ctx.coordinator()
    try:
        result = await coordinator.cancel_recovery(
            CancelRecoveryInput(service_name=service, reason=reason)
        )
    except RecoveryOrchestratorError as err:
        if err.code != "unknown_service":
            raise
        result = None
    if result is not None:
        return result
    # Not the coordinator's: a recovery started directly (e.g. with `temporal workflow start`).
    status = await recovery_status(await ctx.client(), service)
    if status is None:
        raise UnknownService(f"No active recovery task for service '{service}'")
    if status.state.finished:
        # As approve says it: the operator learns how it ended, and that nothing was sent.
        raise CliError(
            f"Recovery of '{service}' has already ended {await _ending(ctx, service, status)}: "
            "nothing to cancel"
        )
    await recovery_handle(await ctx.client(), service).signal(
        ServiceRecovery.cancel, CancelInput(reason=reason)
    )
    return CancelRecoveryResult(service_name=service, cancelled=True, was=status.state.value)


async def _ending(ctx: Context, service: str, status: RecoveryStatus) -> str:
    """Return how a finished recovery ended, as ``history`` shows it."""
    ended = status.state.value
    try:
        attempts = await recovery_attempts(await ctx.client(), service) or []
    except RPCError:
        return ended
    if attempts and ended == "succeeded":
        last = attempts[-1]
        passed = last.health_check is not None and last.health_check.passed
        ended = outcome({"state": ended, "health_check_passed": passed})
    if status.last_error and status.state.value != "succeeded":
        ended += f" ({status.last_error})"
    return ended


COMMANDS = [schedule, execute_now, approve, cancel]
