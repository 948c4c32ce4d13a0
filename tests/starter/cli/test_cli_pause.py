"""``recoveryctl pause`` / ``resume``, the status's holds, and how endings read, in process.

``starter.cli.run`` runs here in a thread of the test's process (its own event loop,
as the console script's), against the dev server, a worker and a coordinator of the
test's own; what it prints is captured as a user in a pipe sees it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.cli import run
from tests.helpers.waiting import eventually
from tests.helpers.workers import running_worker

pytestmark = pytest.mark.timeout(120)


class InProcessCli:
    """``recoveryctl`` run by ``starter.cli.run`` in a thread, aimed at the test's coordinator."""

    def __init__(
        self, coordinator_id: str, task_queue: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        self.coordinator_id = coordinator_id
        self.task_queue = task_queue
        self.capsys = capsys
        self._one_at_a_time = asyncio.Lock()

    async def ctl(self, *argv: str) -> tuple[int, str, str]:
        """Run one command; return its exit code, stdout and stderr."""
        async with self._one_at_a_time:  # one capture at a time
            self.capsys.readouterr()
            code = await asyncio.to_thread(
                run,
                ["--coordinator-id", self.coordinator_id, "--task-queue", self.task_queue, *argv],
            )
            captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    async def json(self, *argv: str) -> Any:
        code, out, err = await self.ctl("--json", *argv)
        assert code == 0, err
        return json.loads(out)


@pytest_asyncio.fixture
async def ctl(
    dev_env: WorkflowEnvironment,
    store: SQLiteBreakerStore,
    task_queue: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[InProcessCli]:
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.setattr("getpass.getuser", lambda: "alice")
    async with running_worker(dev_env.client, store, task_queue):
        yield InProcessCli(f"coordinator-{task_queue}", task_queue, capsys)


def _no_python_values(text: str) -> None:
    assert not re.search(r"\b(True|False|None)\b", text), text


async def test_pause_shows_in_the_status_with_until_and_reason_and_resume_lifts_it(
    ctl: InProcessCli, service: str
) -> None:
    before = datetime.now(timezone.utc)
    code, out, err = await ctl.ctl("pause", service, "--for", "2h", "--reason", "db migration")
    assert (code, err) == (0, ""), err
    assert out.startswith(f"paused {service} until ") and "db migration" in out
    assert "(for 2 h)" in out
    _no_python_values(out)

    status = await ctl.json("status")
    pause = status["paused"][service]
    until = datetime.fromisoformat(pause["until"])
    assert before + timedelta(hours=2) <= until <= datetime.now(timezone.utc) + timedelta(hours=2)
    assert pause["reason"] == "db migration"

    other = f"other-{service}"
    await ctl.json("pause", other, "--for", "90s", "--reason", "two\nlines")
    code, out, err = await ctl.ctl("status")
    assert code == 0, err
    section = out.split("paused (")[1].split("recent:")[0]
    [row] = [line for line in section.splitlines() if line.startswith(other)]
    assert row.endswith("two lines"), "a reason stays on its service's row"
    [row] = [line for line in section.splitlines() if line.startswith(service)]
    assert until.strftime("%Y-%m-%d %H:%M:%S") in row and row.endswith("db migration")
    _no_python_values(out)

    await ctl.json("resume", other)
    code, out, err = await ctl.ctl("resume", service)
    assert (code, err) == (0, ""), err
    assert out.strip() == f"resumed {service}: lifted the pause"
    assert service not in (await ctl.json("status")).get("paused", {})
    code, out, _ = await ctl.ctl("status")
    assert "paused (" not in out

    resumed = await ctl.json("resume", service)
    assert resumed == {"service_name": service, "resumed": False, "lifted": []}
    code, out, err = await ctl.ctl("resume", service)
    assert code == 0 and out.startswith(f"nothing held {service} back"), err


async def test_pause_defaults_to_a_day_and_answers_json(ctl: InProcessCli, service: str) -> None:
    before = datetime.now(timezone.utc)
    paused = await ctl.json("pause", service)
    assert set(paused) == {"service_name", "until", "reason"}
    assert paused["service_name"] == service and paused["reason"] == "paused by operator"
    until = datetime.fromisoformat(paused["until"])
    assert before + timedelta(days=1) <= until <= before + timedelta(days=1, minutes=1)
    # Pausing again replaces the pause.
    again = await ctl.json("pause", service, "--for", "1h30m", "--reason", "shorter")
    assert datetime.fromisoformat(again["until"]) < until
    assert (await ctl.json("status"))["paused"][service]["reason"] == "shorter"
    assert (await ctl.json("resume", service))["lifted"] == ["paused"]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("0", "is no pause"),
        ("0s", "above 0"),
        ("-5m", "is negative"),
        ("soon", "is not a duration"),
        ("90", "needs a unit"),
        ("31d", "over 30 days"),
        ("720h1s", "over 30 days"),
        ("1h1h", "gives a unit twice"),
        ("1.5s", "whole number of seconds"),
        ("9" * 60 + "d", "at most 30d"),
    ],
)
async def test_a_bad_pause_duration_exits_2_naming_the_option(
    value: str, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await asyncio.to_thread(run, ["pause", "api", "--for", value])
    out, err = capsys.readouterr()
    assert (code, out) == (2, ""), err
    assert err.count("\n") == 1 and err.startswith("recoveryctl: error: --for: "), err
    assert why in err


async def test_a_bad_pause_reason_or_name_exits_2(
    ctl: InProcessCli, service: str
) -> None:
    code, out, err = await ctl.ctl("pause", service, "--reason", "x" * 100_000)
    assert (code, out) == (2, "") and err.count("\n") == 1 and "reason" in err, err
    code, out, err = await ctl.ctl("pause", service, "--reason", "  ")
    assert (code, out) == (2, "") and err.count("\n") == 1 and "--reason" in err, err
    code, out, err = await ctl.ctl("pause", "bad name")
    assert (code, out) == (2, "") and "service_name" in err, err
    code, out, err = await ctl.ctl("resume", "bad name")
    assert (code, out) == (2, "") and "service_name" in err, err


async def test_status_says_what_a_recovery_awaiting_an_operator_waits_for(
    ctl: InProcessCli, service: str
) -> None:
    await ctl.json("schedule", service, "--strategy", "manual")
    await eventually(
        lambda: ctl.json("status"),
        lambda s: s["services"].get(service, {}).get("state") == "awaiting_manual",
    )
    code, out, err = await ctl.ctl("status")
    assert code == 0, err
    [row] = [line for line in out.splitlines() if line.startswith(service)]
    assert row.endswith(f"waiting for an operator: recoveryctl approve {service} --operator alice")
    _no_python_values(out)
    await ctl.json("cancel", service)


async def test_an_unchecked_success_reads_so_in_execute_history_and_status(
    ctl: InProcessCli, service: str
) -> None:
    """No health check configured, scheduled by hand: success, but not a verified one."""
    await ctl.json("schedule", service, "--strategy", "immediate")
    await eventually(
        lambda: ctl.json("history"), lambda h: any(r["service_name"] == service for r in h)
    )
    unchecked = "succeeded (closed without a health check)"
    code, out, err = await ctl.ctl("execute", service)
    assert code == 0, err
    assert f"state: {unchecked}" in out and "health_check_passed: no" in out
    _no_python_values(out)
    code, out, err = await ctl.ctl("history")
    [row] = [line for line in out.splitlines() if line.startswith(service)]
    assert unchecked in row
    code, out, err = await ctl.ctl("status")
    [row] = [line for line in out.split("recent:")[1].splitlines() if line.startswith(service)]
    assert unchecked in row
    code, out, err = await ctl.ctl("history", service)
    [row] = [line for line in out.splitlines() if line.startswith("1 ")]
    # Its attempt says more: the store held no breaker for it, and nothing checked it.
    assert "success (no breaker in the store, no health check)" in row


async def test_a_checked_success_reads_as_a_plain_success(ctl: InProcessCli, service: str) -> None:
    policy = {"health_check": {"kind": "callable", "ref": "tests.helpers.checks:always_healthy"}}
    await ctl.json("schedule", service, "--strategy", "immediate", "--policy", json.dumps(policy))
    await eventually(
        lambda: ctl.json("history"), lambda h: any(r["service_name"] == service for r in h)
    )
    code, out, err = await ctl.ctl("execute", service)
    assert code == 0, err
    assert re.search(r"^state: succeeded$", out, re.M) and "health_check_passed: yes" in out, out


async def test_cancel_of_a_finished_recovery_says_how_it_ended(
    ctl: InProcessCli, service: str
) -> None:
    await ctl.json("schedule", service, "--strategy", "immediate")
    await eventually(
        lambda: ctl.json("history"), lambda h: any(r["service_name"] == service for r in h)
    )
    code, out, err = await ctl.ctl("cancel", service, "--reason", "too late")
    assert (code, out) == (1, ""), err
    assert err.count("\n") == 1, err
    assert (
        f"Recovery of '{service}' has already ended succeeded (closed without a health check): "
        "nothing to cancel"
    ) in err


async def test_cancel_of_a_failed_recovery_names_the_failure(
    ctl: InProcessCli, service: str
) -> None:
    policy = {
        "max_retry_attempts": 1,
        "health_check": {"kind": "http", "url": "http://127.0.0.1:1/health", "timeout_ms": 500},
    }
    await ctl.json("schedule", service, "--strategy", "immediate", "--policy", json.dumps(policy))
    ended = await eventually(
        lambda: ctl.json("history"), lambda h: any(r["service_name"] == service for r in h)
    )
    assert [r for r in ended if r["service_name"] == service][-1]["state"] == "failed"
    code, out, err = await ctl.ctl("cancel", service)
    assert (code, out) == (1, "") and err.count("\n") == 1, err
    assert f"Recovery of '{service}' has already ended failed (" in err
    assert err.rstrip().endswith("): nothing to cancel"), err
