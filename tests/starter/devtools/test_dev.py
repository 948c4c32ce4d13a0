"""``recoveryctl dev`` (what ``make dev`` runs), as a process on ports of its own."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from temporalio.api.enums.v1 import VersioningBehavior
from temporalio.service import RPCError

from activities.build_id import default_build_id
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from recovery_breakers.store import BreakerState
from starter.client.connection import connect
from starter.client.deployment import DEPLOYMENT_NAME, current_build_id, describe_deployment
from tests.helpers.paths import REPO
from tests.helpers.servers import free_port, health_server
from workflows.constants import COORDINATOR_WORKFLOW_ID, TASK_QUEUE, recovery_workflow_id
from workflows.models import RecoveryResult, RecoveryState, ServiceRecoveryInput
from workflows.service_recovery import ServiceRecovery

pytestmark = pytest.mark.timeout(90)
RECOVERYCTL = str(Path(sys.executable).parent / "recoveryctl")


async def _dev(cwd: Path, *ports: int) -> asyncio.subprocess.Process:
    port, ui_port, metrics_port, receiver_port = ports
    env = {
        **os.environ,
        # What a shell pointed at a real cluster holds: dev mode must not follow it.
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "TEMPORAL_NAMESPACE": "production",
    }
    env.pop("MAKELEVEL", None)  # as typed in a shell, even when the suite runs under make
    return await asyncio.create_subprocess_exec(
        RECOVERYCTL, "dev", "--port", str(port), "--ui-port", str(ui_port),
        "--metrics-port", str(metrics_port), "--receiver-port", str(receiver_port),
        cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


def _post_status(port: int, token: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/recoveries", data=b"{}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return refused.code


async def _line_with(process: asyncio.subprocess.Process, text: str) -> str:
    assert process.stdout is not None
    while True:
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert line, f"recoveryctl dev ended before printing {text!r}"
        if text in line:
            return line


async def test_dev_serves_its_own_server_and_refuses_a_taken_port(tmp_path: Path) -> None:
    ports = (free_port(), free_port(), free_port(), free_port())
    first = await _dev(tmp_path, *ports)
    try:
        receiver = await _line_with(first, "Alert receiver:")
        assert f"http://127.0.0.1:{ports[3]}/alertmanager (token: .recovery/receiver-token)" in receiver
        token = (tmp_path / ".recovery" / "receiver-token").read_text().strip()
        assert _post_status(ports[3], "") == 401  # the receiver serves, and wants its token
        assert _post_status(ports[3], token) == 422  # the token passes; an empty form schedules nothing
        await _line_with(first, "Ctrl-C stops them all")
        client = await connect(target_host=f"127.0.0.1:{ports[0]}", namespace="default")
        handle = client.get_workflow_handle(COORDINATOR_WORKFLOW_ID)
        for _ in range(100):  # the worker starts the coordinator once it polls
            try:
                await handle.describe()
                break
            except Exception:
                await asyncio.sleep(0.2)
        assert (await handle.describe()).status is not None

        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        second = await _dev(elsewhere, *ports)
        out, err = await asyncio.wait_for(second.communicate(), 30)
        assert second.returncode != 0
        # Every taken port is named at once, with every option that moves one.
        taken = ", ".join(str(port) for port in ports)
        assert f"ports {taken} are already in use" in err.decode(), err.decode()
        assert "--port" in err.decode() and "--receiver-port" in err.decode(), err.decode()
        assert "Temporal dev server:" not in out.decode() and "Stopped." not in out.decode()
        # The same folder on free ports: the same SQLite file, refused before any server starts.
        same_folder = await _dev(tmp_path, free_port(), free_port(), free_port(), free_port())
        out, err = await asyncio.wait_for(same_folder.communicate(), 30)
        assert same_folder.returncode != 0
        assert f".recovery/ is in use by pid {first.pid}" in err.decode(), err.decode()
    finally:
        first.send_signal(signal.SIGINT)
        out, _ = await asyncio.wait_for(first.communicate(), 40)
    assert first.returncode == 0
    assert "Stopped. State is kept in .recovery/" in out.decode()
    # Custom ports: the line says the exact command that resumes on them.
    [stopped] = [line for line in out.decode().splitlines() if line.startswith("Stopped.")]
    again = stopped.split("`")[1]
    argv = shlex.split(again)
    assert Path(argv[0]).name == "recoveryctl" and argv[1] == "dev"
    assert argv[2:] == [
        "--port", str(ports[0]), "--ui-port", str(ports[1]), "--metrics-port", str(ports[2]),
        "--receiver-port", str(ports[3]),
    ]
    assert (tmp_path / ".recovery" / "temporal.db").exists()


async def _stop(process: asyncio.subprocess.Process) -> str:
    process.send_signal(signal.SIGINT)
    out, _ = await asyncio.wait_for(process.communicate(), 40)
    assert process.returncode == 0
    return out.decode()


async def test_dev_again_resumes_a_recovery_on_the_same_build(tmp_path: Path) -> None:
    """``make dev``'s worker is a version made current; started again, it serves its runs."""
    ports = (free_port(), free_port(), free_port(), free_port())
    build = default_build_id()
    service = "resumed-svc"
    first = await _dev(tmp_path, *ports)
    async with health_server([503, 200]) as server:
        try:
            await _line_with(first, "Ctrl-C stops them all")
            client = await connect(target_host=f"127.0.0.1:{ports[0]}", namespace="default")
            for _ in range(60):  # the worker makes its version current once it polls
                try:
                    described = await describe_deployment(client, DEPLOYMENT_NAME)
                except RPCError:  # the server limits reads of a deployment
                    described = None
                if described is not None and current_build_id(described[0]) == build:
                    break
                await asyncio.sleep(0.5)
            assert described is not None and current_build_id(described[0]) == build
            SQLiteBreakerStore(tmp_path / ".recovery" / "breakers.db").set_state(service, BreakerState.OPEN)
            handle = await client.start_workflow(
                ServiceRecovery.run,
                ServiceRecoveryInput.model_validate({
                    "service_name": service,
                    "policy": {
                        "initial_delay_ms": 4000,
                        "health_check": {"kind": "http", "url": server.url, "timeout_ms": 2000},
                    },
                }),
                id=recovery_workflow_id(service),
                task_queue=TASK_QUEUE,
            )
            for _ in range(100):  # pinned by its first task
                info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
                if info.deployment_version.build_id:
                    break
                await asyncio.sleep(0.1)
            assert info.behavior == VersioningBehavior.VERSIONING_BEHAVIOR_PINNED
            assert info.deployment_version.build_id == build
            for _ in range(100):  # the first attempt fails; the next waits out its backoff
                if server.requests:
                    break
                await asyncio.sleep(0.1)
        finally:
            await _stop(first)
        assert server.requests == 1  # in its backoff when dev mode stopped
        again = await _dev(tmp_path, *ports)
        try:
            await _line_with(again, "Ctrl-C stops them all")
            client = await connect(target_host=f"127.0.0.1:{ports[0]}", namespace="default")
            handle = client.get_workflow_handle_for(ServiceRecovery.run, recovery_workflow_id(service))
            result = RecoveryResult.model_validate(await asyncio.wait_for(handle.result(), 30))
        finally:
            await _stop(again)
    assert result.state is RecoveryState.SUCCEEDED and server.requests == 2


def test_two_options_given_one_port_are_named() -> None:
    from starter.devtools.dev import DevSetupError, check_ports_free

    port = free_port()
    with pytest.raises(DevSetupError, match=f"--port and --metrics-port are both {port}"):
        check_ports_free({"--port": port, "--ui-port": free_port(), "--metrics-port": port})


def test_the_resume_command_names_the_ports_that_differ_from_make_devs() -> None:
    from starter.devtools.dev import resume_command

    assert resume_command(under_make=False) == "make dev"
    assert resume_command(7233, 8233, 9464, under_make=False) == "make dev"
    direct = shlex.split(resume_command(7244, 8244, 9475, under_make=False))
    assert Path(direct[0]).name == "recoveryctl"
    assert direct[1:] == ["dev", "--port", "7244", "--ui-port", "8244", "--metrics-port", "9475"]
    assert shlex.split(resume_command(7233, 8244, under_make=False))[1:] == [
        "dev", "--ui-port", "8244"
    ]
    assert resume_command(7244, under_make=True) == "make dev DEV_ARGS='--port 7244'"




def _make(*argv: str) -> str:
    """Return what ``make -n`` would run (nothing runs), from the repository's root."""
    # As from a shell: under `make test` the parent's MAKELEVEL would add "Entering
    # directory" lines around what the child plans.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    done = subprocess.run(
        ["make", "-n", "-B", *argv], cwd=REPO, capture_output=True, text=True, timeout=30, env=env
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_venv_only_creates_the_venv_and_installs() -> None:
    planned = _make("venv")
    assert "pip install" in planned and "-m venv" in planned
    assert "recoveryctl" not in planned and "pytest" not in planned


def test_make_dev_passes_its_options_to_recoveryctl_dev() -> None:
    planned = _make("dev", "DEV_ARGS=--port 7244 --ui-port 8244").splitlines()
    assert planned[-1].endswith("/recoveryctl dev --port 7244 --ui-port 8244")
