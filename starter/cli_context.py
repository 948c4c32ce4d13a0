"""What every ``recoveryctl`` command gets: its arguments, a lazy client, and its errors."""

from __future__ import annotations

import asyncio
import math
import os
from types import SimpleNamespace

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.envconfig import ClientConfig
from temporalio.service import RPCError, RPCStatusCode

from starter.connection import DEFAULT_TARGET, connect
from starter.coordinator_client import CoordinatorClient

# An unreachable server must be reported well within 10 s, even where packets are dropped
# rather than refused; a reachable one answers a connect in well under a second.
CONNECT_TIMEOUT_SECONDS = 5.0


class CliError(Exception):
    """A refused operation: printed as one line, exit code 1."""


class UnknownService(CliError):
    """A service with no recovery to act on: printed as one line, exit code 2."""


class Unreachable(Exception):
    """The Temporal server cannot be reached: printed as one line, exit code 3."""


class Context:
    """Parsed arguments plus a lazily connected client and coordinator."""

    def __init__(self, args: SimpleNamespace) -> None:
        self.args = args
        self._client: Client | None = None

    async def client(self) -> Client:
        """Connect on first use (so bad input fails before any network wait)."""
        if self._client is None:
            address = configured_target()  # a bad profile or config file: exit 2, nothing sent
            limit = min(CONNECT_TIMEOUT_SECONDS, getattr(self.args, "timeout", None) or math.inf)
            try:
                self._client = await asyncio.wait_for(connect(), limit)
            except TimeoutError:
                raise Unreachable(
                    f"cannot reach the Temporal server at {address}: no answer within {limit:g} s"
                ) from None
            except RuntimeError as err:  # the SDK's "Failed client connect: …"
                raise Unreachable(f"cannot reach the Temporal server at {address}: {err}") from None
        return self._client

    async def check_namespace(self) -> None:
        """Fail as bad input (exit 2) when the namespace does not exist.

        Lookups answer "not found" alike for a missing workflow and a missing namespace:
        asked only after a lookup found nothing, to say which one it was.
        """
        client = await self.client()
        try:
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=client.namespace)
            )
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                raise ValueError(f"namespace {client.namespace!r} does not exist") from None
            # Not allowed to describe it (a narrow API key): the lookup's own answer stands.

    async def coordinator(self) -> CoordinatorClient:
        """Return the coordinator named by ``--coordinator-id``."""
        return CoordinatorClient(
            await self.client(),
            workflow_id=self.args.coordinator_id,
            task_queue=self.args.task_queue,
        )


# Temporal's own limit on a namespace's name.
MAX_NAMESPACE = 255


def apply_connection_flags(address: str | None, namespace: str | None, profile: str | None) -> None:
    """Make ``--address``/``--namespace``/``--profile`` win over the environment and profiles.

    They go into envconfig's own variables, not into one ``connect()`` call, so every
    reader of the client settings sees them alike: ``connect()``, and the demo and dev
    mode, which look at the configured address before connecting.
    """
    if namespace is not None and not 1 <= len(namespace) <= MAX_NAMESPACE:
        raise ValueError(f"--namespace must be 1-{MAX_NAMESPACE} characters, got {len(namespace)}")
    for name, value in (
        ("TEMPORAL_ADDRESS", address),
        ("TEMPORAL_NAMESPACE", namespace),
        ("TEMPORAL_PROFILE", profile),
    ):
        if value is not None:
            os.environ[name] = value


def configured_target() -> str:
    """Return the address the client settings name; bad settings are bad input (exit 2)."""
    try:
        config = ClientConfig.load_client_connect_config()
    except RuntimeError as err:  # envconfig's ConfigError: "Profile 'x' not found", bad TOML
        raise ValueError(f"client settings: {err}") from None
    except OSError as err:  # a TLS certificate or key path that cannot be read
        raise ValueError(f"client settings: TLS file {err.filename!r}: {err.strerror}") from None
    return str(config.get("target_host") or DEFAULT_TARGET)


def positive_seconds(value: str | float) -> float:
    """Parse a ``--timeout`` or ``--interval``: a finite number of seconds above 0.

    Raises:
        ValueError: anything else (click reports it as bad input, exit 2).
    """
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise ValueError(f"must be a number of seconds above 0, got {value!r}")
    return seconds
