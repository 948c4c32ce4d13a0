"""recoveryctl's contract without a server: help, ``--json`` placement, exit codes, time to fail."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from starter.cli import render, run
from starter.cli.app import cli
from starter.cli.options import Invocation
from starter.cli.views import Status
from tests.helpers.recoveryctl import recoveryctl
from tests.helpers.servers import free_port

pytestmark = pytest.mark.timeout(120)
RECOVERYCTL = str(Path(sys.executable).parent / "recoveryctl")

# The least each command needs to parse.
ARGUMENTS = {
    "schedule": ["api"], "execute": ["api"], "approve": ["api", "--operator", "a"],
    "cancel": ["api"], "policy get": ["api"], "policy set": ["api", "{}"],
    "pause": ["api"], "resume": ["api"], "serve": ["--bind", "127.0.0.1:8266"],
}


def commands(
    group: click.Group = cli, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Yield every command and group under ``group`` (the root too), with its path."""
    yield path, group
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


PATHS = [path for path, _ in commands()]
LEAVES = [path for path, command in commands() if not isinstance(command, click.Group)]


async def ctl(
    *argv: str, address: str | None = None, process: bool = False
) -> tuple[int, str, str, float]:
    """Run ``recoveryctl``; return its code, output, errors and seconds taken.

    In this process (``tests.helpers.recoveryctl``), or with ``process`` as the console
    script a user starts: for the time to fail that an operator waits, start-up included.
    """
    env = {"TEMPORAL_ADDRESS": address or f"127.0.0.1:{free_port()}"}
    started = time.monotonic()
    if not process:
        code, out, err = await recoveryctl(*argv, env=env)
        return code, out, err, time.monotonic() - started
    running = await asyncio.create_subprocess_exec(
        RECOVERYCTL, *argv, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out_bytes, err_bytes = await asyncio.wait_for(running.communicate(), timeout=30)
    assert running.returncode is not None
    return running.returncode, out_bytes.decode(), err_bytes.decode(), time.monotonic() - started


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "recoveryctl")
def test_every_command_has_help_with_an_example(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run([*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Examples:" in out
    example_lines = [line.strip() for line in out.splitlines() if line.strip().startswith("$ ")]
    assert example_lines and all(line.startswith("$ recoveryctl ") for line in example_lines)
    if path:
        assert any(line.startswith(f"$ recoveryctl {' '.join(path)}") for line in example_lines)


@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_json_is_accepted_before_and_after_every_command(path: tuple[str, ...]) -> None:
    argv = [*path, *ARGUMENTS.get(" ".join(path), [])]
    for placed in (["--json", *argv], [*argv, "--json"], argv):
        parsed = cli.main(args=placed, prog_name="recoveryctl", standalone_mode=False)
        assert isinstance(parsed, Invocation)
        assert parsed.options.json is (placed != argv), placed


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "a command is needed"),
        (["bogus"], "No such command 'bogus'"),
        (["schedule"], "Missing argument 'SERVICE'"),
        (["status", "--bogus"], "No such option '--bogus'"),
        (["schedule", "x", "--strategy", "fast"], "--strategy: 'fast' is not one of"),
        (["schedule", "x", "--priority", "high"], "--priority: 'high' is not a valid integer"),
        (["--timeout", "0", "status"], "--timeout: must be a number of seconds above 0"),
        (["watch", "--count", "0"], "--count: 0 is not in the range"),
        (["watch", "--interval", "soon"], "--interval: must be a number of seconds above 0"),
        (["policy"], "a command is needed"),
        (["policy", "set", "x"], "Missing argument 'POLICY'"),
        (["approve", "x"], "Missing option '--operator'"),
        (["dev", "--port", "70000"], "--port: 70000 is not in the range"),
        (["demo", "--timeout", "-1"], "--timeout: must be a number of seconds above 0"),
        (["demo", "--timeout", "5"], "--timeout needs --exit-when-recovered"),
        (["watch-breakers", "pause"], "No such command 'pause'"),
        (["pause"], "Missing argument 'SERVICE'"),
        (["pause", "api", "--for", "0"], "--for: '0' is no pause"),
        (["pause", "api", "--for", "-1h"], "--for: '-1h' is negative"),
        (["pause", "api", "--for", "31d"], "--for: '31d' is over 30 days"),
        (["pause", "api", "--for", "soon"], "--for: 'soon' is not a duration"),
        (["resume"], "Missing argument 'SERVICE'"),
        (["--profile", "nowhere-profile", "status"], "Profile 'nowhere-profile' not found"),
    ],
)
async def test_bad_arguments_exit_2_with_one_line(argv: list[str], message: str) -> None:
    code, out, err, _ = await ctl(*argv)
    assert (code, out) == (2, ""), err
    assert err.startswith("recoveryctl: error: ") and err.count("\n") == 1, err
    assert message in err


@pytest.mark.parametrize(
    "argv",
    [
        ["status"], ["status", "api"], ["history"], ["history", "api"],
        ["schedule", "api"], ["execute", "api"], ["approve", "api", "--operator", "a"],
        ["cancel", "api"], ["policy", "get", "api"], ["policy", "set", "api", "{}"],
        ["configure", "--start"], ["watch", "--count", "1"], ["watch-breakers", "status"],
        ["pause", "api", "--for", "2h"], ["resume", "api"],
        ["--json", "status"],
    ],
    ids=" ".join,
)
async def test_an_unreachable_server_exits_3_in_one_line_within_10s(argv: list[str]) -> None:
    code, out, err, seconds = await ctl(*argv)
    assert (code, out) == (3, ""), err
    assert err.startswith("recoveryctl: error: cannot reach the Temporal server at 127.0.0.1:")
    assert err.count("\n") == 1 and seconds < 10


async def test_a_server_that_never_answers_exits_3_within_10s() -> None:
    with socket.socket() as silent:  # accepts connections, never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        code, out, err, seconds = await ctl("status", address=address, process=True)
    assert (code, out) == (3, "") and err.count("\n") == 1, err
    assert f"cannot reach the Temporal server at {address}: no answer within" in err
    assert seconds < 10


def test_tables_never_wrap_off_a_terminal() -> None:
    reason = "waiting for " + " and ".join(f"'dependency-{i}'" for i in range(40))
    status = {
        "orchestrator_running": False, "active_recoveries": 0, "queued_recoveries": 1,
        "services": {
            "api": {
                "state": "scheduled", "strategy": "manual", "priority": 1, "attempt_count": 0,
                "max_attempts": 5, "next_attempt_at": None, "reason": f"[defaults] {reason}",
            }
        },
        "recent_history": [],
    }
    text = render.render(Status(status), as_json=False)
    [row] = [line for line in text.splitlines() if line.startswith("api ")]
    assert row.endswith(f"[defaults] {reason}"), "one line, markup shown as written"
    assert "orchestrator running: no" in text and "not coordinated" not in text
