"""What every ``recoveryctl`` command gets: the top level's options and a lazy client."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.envconfig import ClientConfig
from temporalio.service import RPCError, RPCStatusCode

from starter.cli.exit_codes import CliError, Unreachable
from starter.client.connection import DEFAULT_TARGET, connect
from starter.client.coordinator_client import CoordinatorClient
from workflows.constants import COORDINATOR_WORKFLOW_ID, TASK_QUEUE

# An unreachable server must be reported well within 10 s, even where packets are dropped
# rather than refused; a reachable one answers a connect in well under a second.
CONNECT_TIMEOUT_SECONDS = 5.0
# Seconds to wait for an answer unless ``--timeout`` says otherwise.
DEFAULT_TIMEOUT_SECONDS = 30.0


@dataclass
class Options:
    """What the top level parsed (``--json`` may also follow the command): click's
    context object, shared by every subcommand."""

    json: bool = False
    address: str | None = None
    namespace: str | None = None
    profile: str | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    coordinator_id: str = COORDINATOR_WORKFLOW_ID
    task_queue: str = TASK_QUEUE


class Context:
    """The top level's options plus a lazily connected client and coordinator."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._client: Client | None = None
        # Set while the first connection is under way: a timeout then means no server answered.
        self.connecting = False
        self._address = ""

    async def client(self) -> Client:
        """Connect on first use (so bad input fails before any network wait)."""
        if self._client is None:
            # A bad profile or config file: exit 2, nothing sent.
            self._address = configured_target()
            limit = min(CONNECT_TIMEOUT_SECONDS, self.options.timeout)
            self.connecting = True
            try:
                self._client = await asyncio.wait_for(connect(), limit)
            except TimeoutError:
                raise self.unreachable(f"no answer within {limit:g} s") from None
            except RuntimeError as err:  # the SDK's "Failed client connect: …"
                raise self.unreachable(str(err)) from None
            finally:
                self.connecting = False
        return self._client

    def unreachable(self, why: str) -> Unreachable:
        """Return the error for a server that did not answer the connection (exit 3)."""
        shown = shown_target(self._address)
        told = why.replace(self._address, shown) if self._address else why
        return Unreachable(f"cannot reach the Temporal server at {shown}: {told}")

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

    async def answered(self, answer: dict[str, Any] | None) -> dict[str, Any]:
        """Return a coordinator query's answer; None means there is no coordinator: say so."""
        if answer is None:
            await self.check_namespace()
            raise CliError(f"no coordinator {self.options.coordinator_id!r}: is a worker running?")
        return answer

    async def coordinator(self) -> CoordinatorClient:
        """Return the coordinator named by ``--coordinator-id``."""
        return CoordinatorClient(
            await self.client(),
            workflow_id=self.options.coordinator_id,
            task_queue=self.options.task_queue,
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
    if address is not None and not address.strip():
        # Empty, envconfig would fall back to localhost:7233, ignoring TEMPORAL_ADDRESS too.
        raise ValueError("--address must be HOST:PORT, got an empty value")
    if profile is not None and not profile.strip():
        raise ValueError("--profile must name a profile, got an empty value")
    for name, value in (
        ("TEMPORAL_ADDRESS", address),
        ("TEMPORAL_NAMESPACE", namespace),
        ("TEMPORAL_PROFILE", profile),
    ):
        if value is not None:
            os.environ[name] = value


def shown_target(address: str) -> str:
    """Return the address as a message says it: a ``user:password@`` pasted before the host masked.

    Temporal's address is ``HOST:PORT`` (credentials go in ``TEMPORAL_API_KEY`` or TLS
    settings), but one pasted from a URL may carry them, and an error echoes it.
    """
    return f"***@{address.rpartition('@')[2]}" if "@" in address else address


def configured_target() -> str:
    """Return the address the client settings name; bad settings are bad input (exit 2)."""
    try:
        config = ClientConfig.load_client_connect_config()
    except RuntimeError as err:  # envconfig's ConfigError: "Profile 'x' not found", bad TOML
        raise ValueError(f"client settings: {err}") from None
    except OSError as err:  # a TLS certificate or key path that cannot be read
        raise ValueError(f"client settings: TLS file {err.filename!r}: {err.strerror}") from None
    return str(config.get("target_host") or DEFAULT_TARGET)
