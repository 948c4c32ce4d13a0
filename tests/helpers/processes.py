"""Real processes for durability tests: a dev server with SQLite on disk, and a worker.

The ``killable_server`` fixture (``tests/conftest.py``) is a ``DevServer`` a test may kill.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from temporalio.client import Client

from starter.client.connection import connect
from starter.devtools.dev import server_command
from tests.helpers.servers import free_port
from tests.helpers.waiting import eventually


class DevServer:
    """``temporal server start-dev`` persisting to ``state_dir``; kill it and start it again."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.port = free_port()
        self.ui_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """Return ``host:port`` of the gRPC frontend."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (or restart) the server on the same ports and database."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.state_dir / "server.log", "ab")
        self.process = subprocess.Popen(
            server_command(self.state_dir, self.port, self.ui_port), stdout=log, stderr=log
        )

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


class WorkerProcess:
    """``python -m worker`` against a server, with its own breaker store file."""

    def __init__(self, address: str, store_path: Path) -> None:
        self.env = dict(
            os.environ,
            TEMPORAL_ADDRESS=address,
            RECOVERY_CIRCUIT_STORE=f"sqlite:///{store_path}",
        )
        self.log_path = store_path.parent / "worker.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the worker process."""
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker"], env=self.env, stdout=log, stderr=log
        )

    def kill(self) -> None:
        """SIGKILL the worker."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> int:
        """SIGTERM the worker and return its exit code (a clean shutdown is 0)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


async def connect_when_up(address: str) -> Client:
    """Connect to a server that is (re)starting: retry until it answers, for up to 60 s."""

    async def attempt() -> Client | None:
        try:
            return await connect(target_host=address)
        except RuntimeError:
            return None

    client = await eventually(attempt, lambda c: c is not None, timeout=60, interval=0.5)
    assert client is not None
    return client


async def worker_refusing_to_start(settings: dict[str, str], state_dir: Path) -> str:
    """Run ``recovery-worker`` with ``settings`` and no server to reach; return its last line.

    A bad setting must stop it at once with exit 2, before any connection attempt (no
    server listens at the address it is given, so waiting on one would show as exit 1).
    """
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "RECOVERY_CIRCUIT_STORE": f"sqlite:///{state_dir / 'breakers.db'}",
        **settings,
    }
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "recovery-worker"),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 2, err.decode()
    return err.decode().strip().splitlines()[-1]
