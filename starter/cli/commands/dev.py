"""``dev`` and ``demo``: the developer tools (``starter.devtools``) on the command line.

The tools are imported when the command runs: the other commands need none of what
they bring (subprocesses, HTTP services, pybreaker).
"""

from __future__ import annotations

import click

from starter.cli.context import Context
from starter.cli.exit_codes import CliError
from starter.cli.options import command
from starter.cli.values import positive_seconds

_PORT = click.IntRange(1, 65535)


@command(
    "dev",
    "Start the embedded Temporal server and a worker",
    ["recoveryctl dev", "recoveryctl dev --port 7244 --ui-port 8244 --metrics-port 9475"],
    details="State lives under .recovery/; stopping and starting again resumes every recovery.",
    bounded=False,
)
@click.option("--port", type=_PORT, metavar="PORT", default=7233, show_default=True)
@click.option("--ui-port", type=_PORT, metavar="PORT", default=8233, show_default=True)
@click.option(
    "--metrics-port",
    type=_PORT,
    metavar="PORT",
    help="the worker's Prometheus port [default: $RECOVERY_METRICS_BIND, else 9464]",
)
@click.option(
    "--receiver-port",
    type=_PORT,
    metavar="PORT",
    default=8266,
    show_default=True,
    help="the alert receiver's port (`recoveryctl serve`, on 127.0.0.1)",
)
async def dev(
    ctx: Context, port: int, ui_port: int, metrics_port: int | None, receiver_port: int
) -> None:
    """Run the embedded Temporal dev server and a worker until Ctrl-C."""
    from activities.target_vetting import TargetAllowList
    from activities.worker_tuning import WorkerTuning
    from starter.client.services_file import load_services_from_env
    from starter.devtools.dev import run_dev

    # The worker's settings are bad input: said before anything starts, not after the banner.
    load_services_from_env()
    WorkerTuning.from_env()
    TargetAllowList.from_env()
    if await run_dev(port, ui_port, metrics_port, receiver_port):
        raise CliError("dev mode stopped because the server or the worker exited")


@command(
    "demo",
    "A live demo: four services break and are recovered, in order",
    ["recoveryctl demo", "recoveryctl demo --exit-when-recovered --timeout 120 --json"],
    details="With no server at a local address it starts the embedded one and a worker.",
    bounded=False,  # it runs until recovered or stopped: no single answer to wait for
)
@click.option(
    "--exit-when-recovered",
    is_flag=True,
    help="exit 0 once every automatic demo service is recovered (default: run until Ctrl-C)",
)
@click.option(
    "--timeout",
    "demo_timeout",
    type=positive_seconds,
    metavar="SECONDS",
    help="with --exit-when-recovered: exit 1 unless recovered this many seconds after the start",
)
@click.option(
    "--store", help="circuit store URL (default $RECOVERY_CIRCUIT_STORE, else the SQLite file)"
)
@click.option(
    "--ui-port",
    type=_PORT,
    metavar="PORT",
    help="the Web UI's port (default: the server's port + 1000, e.g. 8233)",
)
async def demo(
    ctx: Context,
    exit_when_recovered: bool,
    demo_timeout: float | None,
    store: str | None,
    ui_port: int | None,
) -> None:
    """Run the live demo until the services recover (``--exit-when-recovered``) or Ctrl-C."""
    if demo_timeout is not None and not exit_when_recovered:
        raise ValueError("--timeout needs --exit-when-recovered")
    from starter.devtools.demo import DemoOptions, run_demo

    await run_demo(ctx, DemoOptions(exit_when_recovered, demo_timeout, store, ui_port))


COMMANDS = [dev, demo]
