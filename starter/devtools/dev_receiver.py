"""The receiver under ``make dev``: on loopback port 8266, with a token and link secret of its own.

Dev mode needs no setup, so the token and the link secret are made once, random, in
``.recovery/receiver-token`` and ``.recovery/link-secret`` (readable by the owner only),
unless the environment gives them; ``RECOVERY_RECEIVER_URL`` defaults to the receiver's
own address. The worker gets them as settings over the environment (nothing is written
into this process's environment), so it signs the links in its notifications with the
secret the receiver checks.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from starter.receiver.access_log import show_receiver_log
from starter.receiver.app import build_app, running
from starter.receiver.config import ReceiverConfig

RECEIVER_PORT = 8266
TOKEN_FILE = "receiver-token"
LINK_SECRET_FILE = "link-secret"


@dataclass(frozen=True)
class DevReceiver:
    """The dev receiver's settings, the worker's share of them, and where the token is."""

    config: ReceiverConfig
    worker_env: dict[str, str]
    token_at: str


def prepare_dev_receiver(state_dir: Path, port: int = RECEIVER_PORT) -> DevReceiver:
    """Make (once) the token and the link secret the environment does not give.

    A variable already set wins (or its ``_FILE`` twin, if that is set instead).

    Raises:
        ValueError: a setting is bad (before anything starts).
    """
    state_dir = state_dir.resolve()
    env: dict[str, str] = {}
    token = _unless_set("RECOVERY_RECEIVER_TOKEN", state_dir / TOKEN_FILE, env)
    _unless_set("RECOVERY_LINK_SECRET", state_dir / LINK_SECRET_FILE, env)
    if "RECOVERY_RECEIVER_URL" not in os.environ:
        env["RECOVERY_RECEIVER_URL"] = f"http://127.0.0.1:{port}"
    with _environment(env):  # read as the worker will read them
        config = ReceiverConfig.from_env()
    where = _shown(token) if token is not None else "RECOVERY_RECEIVER_TOKEN(_FILE)"
    return DevReceiver(config=config, worker_env=env, token_at=where)


@asynccontextmanager
async def dev_receiver(
    client: Client, config: ReceiverConfig, port: int = RECEIVER_PORT
) -> AsyncIterator[str]:
    """Serve the receiver on ``127.0.0.1:port`` in this process; yield its address."""
    show_receiver_log()
    async with running(build_app(client, config), "127.0.0.1", port) as (host, bound):
        yield f"http://{host}:{bound}"


def _unless_set(variable: str, path: Path, env: dict[str, str]) -> Path | None:
    """Point ``<variable>_FILE`` at ``path`` (a random secret, made once) unless either is set."""
    if {variable, f"{variable}_FILE"} & os.environ.keys():
        return None
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(32) + "\n")
    env[f"{variable}_FILE"] = str(path)
    return path


def _shown(path: Path) -> str:
    """``path`` as the user would type it: relative when it lies under the working directory."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in the environment for the block, then put it back as it was."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
