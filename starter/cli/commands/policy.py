"""``policy get`` and ``policy set``: a service's recovery policy."""

from __future__ import annotations

import click

from starter.cli.context import Context
from starter.cli.options import command, group, service_argument
from starter.cli.values import POLICY_EXAMPLE, POLICY_HELP, policy_json
from workflows.coordinator_models import PolicyQueryInput, SetRecoveryPolicyInput
from workflows.models import RecoveryPolicy, validate_service_name


@command("get", "Show a service's policy (the default one if unset)", ["recoveryctl policy get api --json"])
@service_argument()
async def get_policy(ctx: Context, service: str) -> RecoveryPolicy:
    """Return a service's policy (the default policy when it has none)."""
    service = validate_service_name(service)
    coordinator = await ctx.coordinator()
    found = await coordinator.get_recovery_policy(PolicyQueryInput(service_name=service))
    return found if found is not None else RecoveryPolicy()


@command(
    "set",
    "Set a service's policy",
    [f"recoveryctl policy set api {POLICY_EXAMPLE}"],
    details=f"POLICY is {POLICY_HELP}.",
)
@service_argument()
@click.argument("policy")
async def set_policy(ctx: Context, service: str, policy: str) -> RecoveryPolicy:
    """Set a service's policy."""
    service = validate_service_name(service)
    request = SetRecoveryPolicyInput(service_name=service, policy=policy_json(policy, "POLICY"))
    coordinator = await ctx.coordinator()
    return await coordinator.set_recovery_policy(request)


policy = group(
    "policy",
    "Get or set a service's recovery policy",
    ["recoveryctl policy get api", f"recoveryctl policy set api {POLICY_EXAMPLE}"],
    [get_policy, set_policy],
)

COMMANDS = [policy]
