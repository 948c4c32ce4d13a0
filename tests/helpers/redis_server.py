"""A real ``redis-server`` on a free loopback port, for tests of the Redis breaker store.

Its data lives in an append-only file in its own directory (synced on every write), so
``stop()`` then ``start()`` brings the same breakers back on the same port: an outage test can
take Redis away in the middle of a recovery and return it. The session's Redis is the
``redis_server`` fixture (and ``redis_url``, emptied for each test) in ``tests/conftest.py``.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from tests.helpers.servers import free_port

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


def redis_server_binary() -> str:
    """Return the path of ``redis-server``.

    Raises:
        RuntimeError: it is not installed (``.ci/run`` installs it with apt-get).
    """
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError(
            "redis-server is not on PATH: install it (apt-get install redis-server) "
            "to run the Redis breaker-store tests"
        )
    return found


class RedisServer:
    """One ``redis-server`` process; restartable on the same port with the same data."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._started_once = False

    @property
    def url(self) -> str:
        """Return the ``redis://`` URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        """Return the file the server logs to (its tail is in a failed start's error)."""
        return self.directory / "redis.log"

    def is_running(self) -> bool:
        """Return whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the server and return once it answers PING.

        Raises:
            RuntimeError: it exited or did not answer within ``START_TIMEOUT_S``.
        """
        if self.is_running():
            return
        # The first start may lose its port to another process between free_port() and bind;
        # a restart must keep its port, or clients holding the URL would lose the server.
        attempts = 1 if self._started_once else 3
        for attempt in range(attempts):
            try:
                self._start_once()
                self._started_once = True
                return
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                self.port = free_port()

    def stop(self) -> None:
        """Shut the server down (SIGTERM, so the append-only file is complete; SIGKILL if stuck)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
        self.process = None

    def client(self) -> redis.Redis:
        """Return a new client of database 0 (bytes replies, as pybreaker expects)."""
        return redis.Redis.from_url(self.url, socket_timeout=5.0)

    def flushall(self) -> None:
        """Delete every key, so a test starts from an empty server."""
        with self.client() as client:
            client.flushall()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _start_once(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--dir", str(self.directory),
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1.0) as probe:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                try:
                    if probe.ping():
                        return
                except redis.exceptions.RedisError:  # refused, or still loading its file
                    time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not start: {self._log_tail()}")

    def _log_tail(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-2000:] or "(no log)"
