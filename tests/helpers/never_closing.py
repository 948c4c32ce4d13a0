"""A stand-in ``ServiceRecovery`` whose run never closes, for a worker of its own.

Cancelled, it carries on: it stands for a cancelled recovery that is slow to close,
which a real one is only for a workflow task or two. Its own module, so that the
workflow sandbox imports nothing else of the test that uses it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow


@workflow.defn(name="ServiceRecovery")
class NeverClosingRecovery:
    """Ignores cancellation and never reports."""

    @workflow.run
    async def run(self, input: dict[str, Any]) -> None:
        """Wait for ever, whatever is asked."""
        while True:
            try:
                await workflow.wait_condition(lambda: False)
            except asyncio.CancelledError:
                continue
