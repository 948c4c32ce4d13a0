"""``--timeout``: how long a command may wait for its answer."""

from __future__ import annotations

import asyncio
from typing import Any

from starter.cli.context import Context
from starter.cli.exit_codes import CliError
from starter.cli.options import Invocation


async def run_bounded(invocation: Invocation) -> Any:
    """Run the command; one that is ``bounded`` fails once ``--timeout`` seconds pass.

    Raises:
        CliError: no answer in time, saying what to check (exit 1).
    """
    options = invocation.options
    ctx = Context(options)
    if not invocation.bounded:
        return await invocation.run(ctx)
    task = asyncio.ensure_future(invocation.run(ctx))
    done, _ = await asyncio.wait({task}, timeout=options.timeout)
    if task in done:
        return task.result()
    # Still connecting: nothing was sent, and the server, not a worker, did not answer.
    connecting = ctx.connecting
    # The SDK turns a cancelled wait into its own error: what matters is that time ran out.
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    if connecting:
        raise ctx.unreachable(f"no answer within {options.timeout:g} s")
    raise CliError(
        f"no answer within {options.timeout:g}s: is a worker polling task queue "
        f"{options.task_queue!r}? A change this command sent may still take effect; to wait "
        f"longer, raise --timeout"
    )
