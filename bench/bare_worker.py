"""``python -m bench.bare_worker``: the bare baselines' worker, in a process of its own.

The product's worker runs as its own process (``worker.py``), so the bare one does
too: both then get a core's worth of Python to themselves, and the memory figure
reads each one's RSS without the bench's own objects in it. SDK defaults
throughout, so the baseline is what Temporal costs out of the box.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from temporalio.client import Client
from temporalio.worker import Worker

from bench.baseline import BARE_WORKFLOWS, noop


async def serve(address: str, task_queue: str) -> None:
    """Poll ``task_queue`` until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    client = await Client.connect(address)
    async with Worker(client, task_queue=task_queue, workflows=BARE_WORKFLOWS, activities=[noop]):
        await stop.wait()


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="host:port of the Temporal server")
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.address, args.task_queue))


if __name__ == "__main__":
    main()
