"""``serve``: the HTTP receiver (SPEC §10) until Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import replace

import click

from starter.cli.context import Context
from starter.cli.options import command


def bind_address(value: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[::1]:8266`` for IPv6; port 0 takes any free one).

    Raises:
        ValueError: saying what was wrong (click reports it as bad input, exit 2).
    """
    host, colon, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"must be HOST:PORT, e.g. 127.0.0.1:8266, got {value!r}")
    return host, int(port)


@command(
    "serve",
    "Receive alerts and serve approve/cancel links over HTTP",
    [
        "recoveryctl serve --bind 127.0.0.1:8266",
        "recoveryctl serve --bind 0.0.0.0:8266 --metrics-bind 127.0.0.1:9465",
    ],
    details=(
        "POST /alertmanager takes Alertmanager's webhook (version 4), POST /recoveries "
        '{"services": [...]}; each firing alert asks for an automatic recovery, under the '
        "same rules as the circuit watch. Both need `Authorization: Bearer <token>` "
        "(RECOVERY_RECEIVER_TOKEN or RECOVERY_RECEIVER_TOKEN_FILE). With RECOVERY_LINK_SECRET "
        "set, it also serves the approve and cancel links of notifications (/links/...). "
        "See docs/receiver.md."
    ),
    bounded=False,
)
@click.option(
    "--bind", "bind", type=bind_address, metavar="HOST:PORT", required=True,
    help="where to listen (loopback unless a proxy or Alertmanager elsewhere must reach it)",
)
@click.option(
    "--metrics-bind", type=bind_address, metavar="HOST:PORT",
    help="serve Prometheus metrics (recovery_receiver_requests_total) here [default: off]",
)
async def serve(ctx: Context, bind: tuple[str, int], metrics_bind: tuple[str, int] | None) -> None:
    """Serve the receiver until Ctrl-C or SIGTERM."""
    from starter.client.connection import connect, metrics_runtime
    from starter.receiver.access_log import show_receiver_log
    from starter.receiver.app import build_app, running
    from starter.receiver.config import ReceiverConfig

    config = ReceiverConfig.from_env()  # bad settings: exit 2 before anything listens
    show_receiver_log()
    if metrics_bind is None:
        client, meter = await ctx.client(), None
    else:
        runtime = metrics_runtime(f"{metrics_bind[0]}:{metrics_bind[1]}")
        client, meter = await connect(runtime=runtime), runtime.metric_meter
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    config = replace(
        config, coordinator_workflow_id=ctx.options.coordinator_id, task_queue=ctx.options.task_queue
    )
    try:
        async with running(build_app(client, config, meter=meter), *bind) as (host, port):
            shown = f"[{host}]" if ":" in host else host
            doors = "POST /alertmanager, POST /recoveries"
            if config.link_secret is not None:
                doors += ", approve and cancel links at /links/"
            print(f"Receiving on http://{shown}:{port}: {doors}", flush=True)
            if metrics_bind is not None:
                print(f"Metrics: http://{metrics_bind[0]}:{metrics_bind[1]}/metrics", flush=True)
            print("Ctrl-C stops it.", flush=True)
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


COMMANDS = [serve]
