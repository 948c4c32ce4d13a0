"""What every figure runs against: a dev server, two worker processes, two loopback ports.

- a ``temporal`` dev server on free loopback ports, SQLite in memory, our search
  attributes registered, its logs off (a figure's errors are in its row), its Go
  garbage collector at ``SERVER_GOGC`` (see there);
- the product's worker (``worker.py``) and the bare baselines' worker
  (``bench.bare_worker``), each in its own process on its own task queue;
- a loopback TCP listener that accepts and closes (a healthy service for TCP
  health checks) and a loopback port nothing listens on (a failing one).

Each figure gets a coordinator of its own (``coordinator_id``) and service names of
its own (a recovery's workflow id is ``recovery-<service>`` whatever its coordinator),
so no figure's recoveries or history counts leak into another's.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from bench.processes import WorkerProcess, start_bare_worker, start_product_worker
from bench.quiet import quiet_runtime
from starter.client.coordinator_client import CoordinatorClient
from starter.client.orchestrator import RecoveryOrchestrator
from starter.devtools.dev import find_binary
from workflows.constants import SEARCH_ATTRIBUTES
from workflows.converter import data_converter

# The dev server's GOGC (Go's default is 100; a GOGC already set in the environment wins).
# At 100, under the schedule row's load the server collected every 1.2-1.5 s (30 ms of
# marking on one of the two cores, GODEBUG=gctrace=1), holding up the call then in
# flight by 5-15 ms, product or baseline alike: about 0.75 % of each side's calls,
# right at p99, so a few collections decided the row (the same code measured 1.04× to
# 1.47× within the hour). At 400 it collects about a quarter as often (the same code:
# 1.06× to 1.12×); docs/performance.md has both.
SERVER_GOGC = "400"


@dataclass
class Bench:
    """The server, the workers and the ports the figures share."""

    client: Client
    address: str
    work_dir: Path
    run_id: str
    product_queue: str
    bare_queue: str
    healthy_port: int
    closed_port: int
    product_worker: WorkerProcess
    bare_worker: WorkerProcess

    def coordinator_id(self, figure: str) -> str:
        """Return the workflow id of ``figure``'s own coordinator."""
        return f"bench-coordinator-{figure}-{self.run_id}"

    async def orchestrator(
        self, figure: str, slots: int, *, task_queue: str | None = None
    ) -> tuple[RecoveryOrchestrator, CoordinatorClient]:
        """Start ``figure``'s coordinator with ``slots``; return its facade and typed client."""
        queue = task_queue or self.product_queue
        orchestrator = RecoveryOrchestrator(
            client=self.client,
            task_queue=queue,
            coordinator_workflow_id=self.coordinator_id(figure),
            max_concurrent_recoveries=slots,
        )
        await orchestrator.start()
        coordinator = CoordinatorClient(
            self.client, workflow_id=self.coordinator_id(figure), task_queue=queue
        )
        return orchestrator, coordinator


@asynccontextmanager
async def bench_environment() -> AsyncIterator[Bench]:
    """Start everything; stop the workers, the listener and the server at the end."""
    with tempfile.TemporaryDirectory(prefix="recovery-bench-") as tmp:
        os.environ.setdefault("GOGC", SERVER_GOGC)  # the server inherits this environment
        env = await WorkflowEnvironment.start_local(
            data_converter=data_converter,
            dev_server_existing_path=find_binary("temporal"),
            dev_server_log_level="never",
            dev_server_extra_args=["--output", "none"],
            search_attributes=SEARCH_ATTRIBUTES,
            runtime=quiet_runtime(),
        )
        async with env:
            listener = await asyncio.start_server(_accept_and_close, "127.0.0.1", 0)
            run_id = uuid.uuid4().hex[:8]
            address = env.client.service_client.config.target_host
            work_dir = Path(tmp)
            product_queue, bare_queue = f"bench-{run_id}", f"bench-{run_id}-bare"
            product = await start_product_worker(
                env.client, address, product_queue, work_dir, "product-worker"
            )
            try:
                bare = await start_bare_worker(
                    env.client, address, bare_queue, work_dir, "bare-worker"
                )
                try:
                    yield Bench(
                        client=env.client,
                        address=address,
                        work_dir=work_dir,
                        run_id=run_id,
                        product_queue=product_queue,
                        bare_queue=bare_queue,
                        healthy_port=listener.sockets[0].getsockname()[1],
                        closed_port=_closed_port(),
                        product_worker=product,
                        bare_worker=bare,
                    )
                finally:
                    await bare.stop()
            finally:
                await product.stop()
                listener.close()


async def _accept_and_close(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A healthy service, as far as a TCP health check can tell."""
    writer.close()


def _closed_port() -> int:
    """Return a loopback port that refuses connections (bound once, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
