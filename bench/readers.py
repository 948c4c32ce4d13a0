"""``python -m bench.readers``: status readers in a process of their own.

The multi-process status figure runs four of these at once, each with its own
client and its own facade (so its own cache), to show that the product's read rate
does not rest on one warm in-process cache. Protocol with the bench: print
``ready`` once connected, wait for a line on stdin (the common start), read for the
given seconds, print one JSON line (``ReadSample.to_json``), exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from bench.quiet import quiet_runtime
from bench.reading import read_for
from bench.status_calls import raw_status
from starter.client.connection import connect
from starter.client.orchestrator import RecoveryOrchestrator

READY = "ready"


async def run(args: argparse.Namespace) -> None:
    """Connect, signal readiness, wait for the start line, read, print the sample."""
    client = await connect(target_host=args.address, namespace="default", runtime=quiet_runtime())
    call: Callable[[], Awaitable[dict[str, Any]]]
    if args.mode == "product":
        orchestrator = RecoveryOrchestrator(
            client=client, task_queue=args.task_queue, coordinator_workflow_id=args.coordinator_id
        )
        call = orchestrator.get_recovery_status
    else:
        call = lambda: raw_status(client, args.coordinator_id)  # noqa: E731
    print(READY, flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    sample = await read_for(call, args.readers, args.seconds)
    print(json.dumps(sample.to_json()), flush=True)


def main() -> None:
    """Parse the command line and read."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--coordinator-id", required=True)
    parser.add_argument("--mode", choices=("product", "raw"), required=True)
    parser.add_argument("--readers", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
