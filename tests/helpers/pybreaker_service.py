"""A service guarded by a real pybreaker breaker, in a process of its own.

Tests drive it one command at a time (``fail``, ``call``, ``state``) and read what
its own breaker then says, while the orchestrator works on the shared store.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
import redis

from tests.helpers.paths import REPO

REPLY_TIMEOUT_S = 30.0
SERVICE = "payments.eu-west"

# A service guarded the way the module docstring of starter.breakers shows. It answers each
# command line ("fail", "call", "state") with what its own pybreaker breaker then reads.
SERVICE_PROGRAM = """
import json, sys
import pybreaker
from starter.breakers import breaker

guard = breaker(sys.argv[1], fail_max=3, reset_timeout=60, success_threshold=2, store_url=sys.argv[2])

def down():
    raise ConnectionError("service down")

def up():
    return "ok"

for line in sys.stdin:
    command = line.strip()
    outcome = None
    if command in ("fail", "call"):
        try:
            guard.call(down if command == "fail" else up)
            outcome = "ok"
        except pybreaker.CircuitBreakerError:
            outcome = "rejected"
        except ConnectionError:
            outcome = "failed"
    opened_at = guard._state_storage.opened_at
    print(json.dumps({
        "outcome": outcome,
        "state": guard.current_state,
        "fail_counter": guard.fail_counter,
        "success_counter": guard.success_counter,
        "opened_at": opened_at.timestamp() if opened_at else None,
    }), flush=True)
"""


class ServiceProcess:
    """A service in its own process, driven one command at a time."""

    def __init__(self, service_name: str, store_url: str, log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SERVICE_PROGRAM, service_name, store_url],
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self._replies: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read_replies, daemon=True)
        self._reader.start()

    def ask(self, command: str) -> dict[str, object]:
        """Send one command and return the service's reply."""
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        try:
            reply = self._replies.get(timeout=REPLY_TIMEOUT_S)
        except queue.Empty:
            reply = ""
        if not reply:
            pytest.fail(f"service gave no reply to {command!r}: {self.log_path.read_text()}")
        answer: dict[str, object] = json.loads(reply)
        return answer

    def stop(self) -> None:
        """End the service (closing its input ends its loop)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        self.process.stdout.close()

    def _read_replies(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._replies.put(line)
        self._replies.put("")  # the process ended


@contextmanager
def running_service(
    store_url: str, tmp_path: Path, service_name: str = SERVICE
) -> Iterator[ServiceProcess]:
    """Run the service process for the duration of a block."""
    service = ServiceProcess(service_name, store_url, tmp_path / f"{service_name}.log")
    try:
        yield service
    finally:
        service.stop()


def backdate_opened_at(store_url: str, when: datetime, service_name: str = SERVICE) -> None:
    """Write the service's ``opened_at`` past the store, as if it had opened at ``when``."""
    if store_url.startswith("redis://"):
        with redis.Redis.from_url(store_url) as raw:
            raw.set(f"{service_name}:pybreaker:opened_at", int(when.timestamp()))
        return
    with sqlite3.connect(store_url.removeprefix("sqlite:///")) as raw:
        raw.execute(
            "UPDATE breakers SET opened_at = ? WHERE service_name = ?",
            (when.isoformat(), service_name),
        )
    raw.close()
