"""What every ``recoveryctl`` command gets: its arguments, a lazy client, and its errors."""

from __future__ import annotations

import asyncio
import math
import os
import re
from types import SimpleNamespace

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.envconfig import ClientConfig
from temporalio.service import RPCError, RPCStatusCode

from starter.connection import DEFAULT_TARGET, connect
from starter.coordinator_client import CoordinatorClient
from workflows.coordinator_models import MAX_PAUSE_SECONDS

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


# One part of a duration: a number and its unit (``90s``, ``1.5h``).
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
# Longer than any pause: checked before the arithmetic, so no number can overflow it.
_MAX_DURATION_TEXT = 40


def duration_seconds(value: str | int) -> int:
    """Parse a ``--for``: ``90s``, ``30m``, ``2h``, ``1d`` or combinations (``1h30m``).

    Returns whole seconds, from 1 s to 30 days.

    Raises:
        ValueError: anything else, saying what was wrong (click reports it as bad
            input naming the option, exit 2).
    """
    if isinstance(value, int) and not isinstance(value, bool):  # click passes a default as is
        value = f"{value}s"
    text = "".join(str(value).split()).lower()  # "1h 30m" as "1h30m"
    if len(text) > _MAX_DURATION_TEXT:
        raise ValueError(f"a duration of {len(text)} characters is not a pause: at most 30d")
    if text.startswith("-"):
        raise ValueError(f"{value!r} is negative: a pause lasts at least 1s")
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        if float(text) == 0:
            raise ValueError(f"{value!r} is no pause: a pause lasts at least 1s")
        raise ValueError(f"{value!r} needs a unit: {text}s, {text}m, {text}h or {text}d")
    parts = _DURATION_PART.findall(text)
    units = [unit for _, unit in parts]
    if not parts or "".join(a + u for a, u in parts) != text:
        raise ValueError(
            f"{value!r} is not a duration: use a number and a unit, s, m, h or d "
            "(e.g. 90s, 30m, 2h, 1d, 1h30m)"
        )
    if len(set(units)) != len(units):
        raise ValueError(f"{value!r} gives a unit twice")
    seconds = sum(float(amount) * _UNIT_SECONDS[unit] for amount, unit in parts)
    if seconds < 1:
        raise ValueError(f"{value!r} is not a duration above 0: a pause lasts at least 1s")
    if seconds > MAX_PAUSE_SECONDS:
        raise ValueError(
            f"{value!r} is over {MAX_PAUSE_SECONDS // 86_400} days: every pause ends, "
            f"at most 30d after it starts"
        )
    if seconds != int(seconds):
        raise ValueError(f"{value!r} is not a whole number of seconds")
    return int(seconds)
