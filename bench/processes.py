"""Worker processes the bench starts, waits for, reads the memory of, and stops.

Both the product's worker (``worker.py``, exactly as deployed) and the bare one
(``bench.bare_worker``) run as processes of their own: that is how they run in
production, it keeps the bench's own readers off their interpreter, and it lets
the memory figure read one worker's RSS from ``/proc`` and nothing else's.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from starter.client.watch_control import set_watch_paused
from workflows.circuit_watch_models import watch_workflow_id

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


@dataclass
class WorkerProcess:
    """A worker in its own process, logging to a file of its own."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        """Return the process id."""
        return self.process.pid

    def cpu_seconds(self) -> float:
        """Return the CPU time the process has used so far (user + system)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
        return ticks / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        """Return the process's resident set size (``VmRSS`` in ``/proc/<pid>/status``)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for {self.name} (pid {self.pid})")

    def log_tail(self, lines: int = 15) -> str:
        """Return the last lines of the worker's log (for an error message)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self) -> None:
        """SIGTERM (the worker shuts down gracefully), then SIGKILL if it lingers."""
        if self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
        except asyncio.TimeoutError:
            self.process.kill()
            await self.process.wait()


def _environment(address: str, extra: dict[str, str]) -> dict[str, str]:
    """Return this process's environment without Temporal or recovery settings, plus ours.

    A developer's ``TEMPORAL_*`` or ``RECOVERY_*`` settings must not point a bench
    worker at another server or store.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEMPORAL_", "RECOVERY_"))
    }
    env.update(TEMPORAL_ADDRESS=address, TEMPORAL_NAMESPACE="default", **extra)
    return env


async def _spawn(
    name: str, command: list[str], env: dict[str, str], log_path: Path
) -> WorkerProcess:
    with log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
        process = await asyncio.create_subprocess_exec(
            *command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )
    return WorkerProcess(name, process, log_path)


async def start_product_worker(
    client: Client,
    address: str,
    task_queue: str,
    work_dir: Path,
    name: str,
    settings: dict[str, str] | None = None,
) -> WorkerProcess:
    """Start ``worker.py`` on ``task_queue`` with a breaker store of its own; wait until it polls.

    ``settings`` are further ``RECOVERY_*`` variables (``RECOVERY_WORKER_TUNING``). The
    circuit watch's schedule (one per namespace) is paused, so that no watch run
    schedules the bench's open breakers behind its back.
    """
    store = {"RECOVERY_CIRCUIT_STORE": f"sqlite:///{work_dir / name}.db"}
    worker = await _spawn(
        name,
        [sys.executable, str(ROOT / "worker.py"), "--task-queue", task_queue],
        _environment(address, {**store, **(settings or {})}),
        work_dir / f"{name}.log",
    )
    await _wait_until_polling(client, worker, task_queue)
    await _pause_watch(client, worker, watch_workflow_id(task_queue))
    return worker


async def start_bare_worker(
    client: Client, address: str, task_queue: str, work_dir: Path, name: str
) -> WorkerProcess:
    """Start ``bench.bare_worker`` on ``task_queue``; wait until it polls."""
    worker = await _spawn(
        name,
        [
            sys.executable,
            "-m",
            "bench.bare_worker",
            "--address",
            address,
            "--task-queue",
            task_queue,
        ],
        _environment(address, {}),
        work_dir / f"{name}.log",
    )
    await _wait_until_polling(client, worker, task_queue)
    return worker


async def _wait_until_polling(client: Client, worker: WorkerProcess, task_queue: str) -> None:
    deadline = asyncio.get_running_loop().time() + READY_TIMEOUT
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    while not (await client.workflow_service.describe_task_queue(request)).pollers:
        _fail_if_gone(worker)
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(
                f"{worker.name} did not poll within {READY_TIMEOUT:g} s:\n{worker.log_tail()}"
            )
        await asyncio.sleep(0.2)


async def _pause_watch(client: Client, worker: WorkerProcess, watch_id: str) -> None:
    """Pause the worker's circuit watch (one per task queue) once the worker has started it."""
    deadline = asyncio.get_running_loop().time() + READY_TIMEOUT
    while True:
        try:
            # NOT_FOUND (WatchNotRunning) until the worker has started the watch.
            await set_watch_paused(
                client, True, "make bench: no watch runs during the benchmark", workflow_id=watch_id
            )
            return
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
        _fail_if_gone(worker)
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"{worker.name} created no watch schedule:\n{worker.log_tail()}")
        await asyncio.sleep(0.2)


def _fail_if_gone(worker: WorkerProcess) -> None:
    if worker.process.returncode is not None:
        raise RuntimeError(
            f"{worker.name} exited with code {worker.process.returncode}:\n{worker.log_tail()}"
        )
