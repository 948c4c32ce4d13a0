"""What every ``recoveryctl`` command gets: its arguments, a lazy client, and its errors."""

from __future__ import annotations

import argparse

from temporalio.client import Client

from starter.connection import connect
from starter.coordinator_client import CoordinatorClient


class CliError(Exception):
    """A refused operation: printed as one line, exit code 1."""


class UnknownService(CliError):
    """A service with no recovery to act on: printed as one line, exit code 2."""


class Unreachable(Exception):
    """The Temporal server cannot be reached: printed as one line, exit code 3."""


class Context:
    """Parsed arguments plus a lazily connected client and coordinator."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._client: Client | None = None

    async def client(self) -> Client:
        """Connect on first use (so bad input fails before any network wait)."""
        if self._client is None:
            try:
                self._client = await connect()
            except RuntimeError as err:  # the SDK's "Failed client connect: …"
                raise Unreachable(f"cannot reach the Temporal server: {err}") from None
        return self._client

    async def coordinator(self) -> CoordinatorClient:
        """Return the coordinator named by ``--coordinator-id``."""
        return CoordinatorClient(
            await self.client(),
            workflow_id=self.args.coordinator_id,
            task_queue=self.args.task_queue,
        )


def positive_seconds(text: str) -> float:
    """Parse a ``--timeout``: a finite number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text!r}")
    return value
