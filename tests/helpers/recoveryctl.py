"""``recoveryctl`` run inside the test process: its ``run(argv)``, with its own stdout and stderr.

Starting the console script costs a Python interpreter and every import (one to four
seconds on a loaded 2-core machine) and adds nothing for what most tests check: the
exit code, the output, the refusal. The few that need a real process (``os._exit``, a
broken pipe, a terminal, time to fail) start one themselves.

``run`` reads the environment (``TEMPORAL_ADDRESS``…) and its connection flags write
it, so each call gets the environment it asks for and the test's is put back after.
Calls run one at a time on a worker thread (``run`` starts an event loop of its own).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import threading
from collections.abc import Mapping
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

from starter import cli
from starter.devtools.dev import find_binary

_ONE_AT_A_TIME = threading.Lock()


def run_in_process(argv: list[str], env: Mapping[str, str]) -> tuple[int, str, str]:
    """Run ``recoveryctl argv`` with ``env`` over the environment (``""`` unsets a name)."""
    with _ONE_AT_A_TIME:
        saved = dict(os.environ)
        try:
            for name, value in env.items():
                if value == "":
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            out, err = io.StringIO(), io.StringIO()
            with redirect_stdout(out), redirect_stderr(err):
                code = cli.run(argv)
            return code, out.getvalue(), err.getvalue()
        finally:
            os.environ.clear()
            os.environ.update(saved)


async def recoveryctl(*argv: str, env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``recoveryctl`` in this process without blocking the test's event loop."""
    return await asyncio.to_thread(run_in_process, list(argv), env or {})


class Cli:
    """Runs a command-line tool against the test's server, coordinator and task queue."""

    def __init__(self, address: str, coordinator_id: str, task_queue: str) -> None:
        self.address = address
        self.coordinator_id = coordinator_id
        self.task_queue = task_queue

    async def run(self, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        """Run ``argv`` aimed at the test's server (``env`` overrides; ``""`` unsets)."""
        merged = {**os.environ, "TEMPORAL_ADDRESS": self.address, **(env or {})}
        env = {name: value for name, value in merged.items() if value != ""}
        process = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def ctl(self, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        """Run ``recoveryctl`` (in this process) aimed at this test's coordinator."""
        return await recoveryctl(
            "--coordinator-id", self.coordinator_id, "--task-queue", self.task_queue, *argv,
            env={"TEMPORAL_ADDRESS": self.address, **(env or {})},
        )

    async def ctl_json(self, *argv: str) -> Any:
        code, out, err = await self.ctl("--json", *argv)
        assert code == 0, err
        return json.loads(out)

    async def temporal(self, *argv: str) -> tuple[int, str, str]:
        """Run the official ``temporal`` CLI."""
        return await self.run(find_binary("temporal"), *argv, "--address", self.address)
