"""The ``recoveryctl`` command tree: the top level's options, and every command.

To add a command: write it in a module under ``starter/cli/commands/`` with
``starter.cli.options.command`` (see that module's docstring), list it in the module's
``COMMANDS``, and add the module to ``COMMAND_MODULES`` below.
"""

from __future__ import annotations

import click

from starter.cli.commands import (
    breakers,
    configure,
    dev,
    pauses,
    policy,
    recoveries,
    serve,
    status,
)
from starter.cli.context import DEFAULT_TIMEOUT_SECONDS, Options
from starter.cli.exit_codes import PROG
from starter.cli.options import examples, json_flag
from starter.cli.values import positive_seconds
from workflows.constants import COORDINATOR_WORKFLOW_ID, TASK_QUEUE

ROOT_HELP = """The operator's command line for recovery-orchestrator.

Human output by default; --json (before or after the command) for scripts. Exit codes: 0 ok,
2 bad input or an unknown service, 1 a refused or failed operation, 3 the Temporal server
cannot be reached; each failure is one line on stderr. Connection settings follow Temporal's
envconfig (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_PROFILE, config-file profiles);
--address, --namespace and --profile override them.
"""

# Every module of commands; click lists the commands by name whatever the order here.
COMMAND_MODULES = [dev, recoveries, status, pauses, policy, configure, breakers, serve]


@click.group(
    PROG,
    params=[json_flag()],
    help=ROOT_HELP,
    epilog=examples(
        [
            "recoveryctl status",
            "recoveryctl --json status",
            "recoveryctl --address temporal.internal:7233 watch",
        ]
    ),
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--address",
    metavar="HOST:PORT",
    help="Temporal server (default $TEMPORAL_ADDRESS, else the profile, else localhost:7233)",
)
@click.option(
    "--namespace",
    help="Temporal namespace (default $TEMPORAL_NAMESPACE, else the profile, else default)",
)
@click.option(
    "--profile",
    help="profile of the Temporal client config file (default $TEMPORAL_PROFILE, else default)",
)
@click.option(
    "--timeout",
    type=positive_seconds,
    metavar="SECONDS",
    default=DEFAULT_TIMEOUT_SECONDS,
    show_default=True,
    help="seconds to wait for an answer",
)
@click.option("--coordinator-id", default=COORDINATOR_WORKFLOW_ID, hidden=True)
@click.option("--task-queue", default=TASK_QUEUE, hidden=True)
def cli(
    address: str | None,
    namespace: str | None,
    profile: str | None,
    timeout: float,
    coordinator_id: str,
    task_queue: str,
) -> None:
    """Keep the top level's options for the command (``--json`` is kept as it is parsed)."""
    options = click.get_current_context().ensure_object(Options)
    options.address = address
    options.namespace = namespace
    options.profile = profile
    options.timeout = timeout
    options.coordinator_id = coordinator_id
    options.task_queue = task_queue


for module in COMMAND_MODULES:
    for each in module.COMMANDS:
        cli.add_command(each)
