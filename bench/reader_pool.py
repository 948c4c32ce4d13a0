"""Start ``bench.readers`` processes, start them reading at one moment, collect their samples."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Literal

from bench.processes import ROOT
from bench.readers import READY
from bench.reading import ReadSample, side_by_side

START_TIMEOUT = 60.0


async def read_from_processes(
    address: str,
    task_queue: str,
    coordinator_id: str,
    mode: Literal["product", "raw"],
    *,
    processes: int,
    readers: int,
    seconds: float,
) -> ReadSample:
    """Return what ``processes`` × ``readers`` concurrent readers read together.

    Every process connects first and says it is ready; only then do all start, so
    no process's import or connection time falls inside another's window.
    """
    command = [
        sys.executable,
        "-m",
        "bench.readers",
        "--address",
        address,
        "--task-queue",
        task_queue,
        "--coordinator-id",
        coordinator_id,
        "--mode",
        mode,
        "--readers",
        str(readers),
        "--seconds",
        str(seconds),
    ]
    children = [
        await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        for _ in range(processes)
    ]
    try:
        for child in children:
            await asyncio.wait_for(_expect_ready(child), START_TIMEOUT)
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            await child.stdin.drain()
        outputs = await asyncio.wait_for(
            asyncio.gather(*(child.communicate() for child in children)), seconds + START_TIMEOUT
        )
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
    samples = []
    for child, (stdout, stderr) in zip(children, outputs):
        if child.returncode != 0:
            raise RuntimeError(
                f"reader process exited {child.returncode}: {stderr.decode()[-2000:]}"
            )
        samples.append(ReadSample.from_json(json.loads(stdout.decode().strip().splitlines()[-1])))
    return side_by_side(samples)


async def _expect_ready(child: asyncio.subprocess.Process) -> None:
    assert child.stdout is not None
    line = await child.stdout.readline()
    if line.decode().strip() != READY:
        stderr = await child.stderr.read() if child.stderr is not None else b""
        raise RuntimeError(f"reader process did not start: {line!r} {stderr.decode()[-2000:]}")
