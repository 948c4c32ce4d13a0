"""recoveryctl and the official ``temporal`` CLI, run as processes against the dev server."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import sys
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.client.watch_control import ensure_watch
from tests.helpers.policies import blocking_policy_json
from tests.helpers.recoveryctl import Cli
from tests.helpers.servers import free_port
from tests.helpers.waiting import eventually
from workflows.circuit_watch_models import WatchInput
from workflows.constants import CIRCUIT_WATCH_SCHEDULE_ID

pytestmark = pytest.mark.timeout(120)


async def test_recoveryctl_schedule_approve_history_policy(cli: Cli, service: str) -> None:
    scheduled = await cli.ctl_json("schedule", service, "--strategy", "manual", "--priority", "2")
    assert scheduled == {
        "service_name": service, "outcome": "queued", "state": "scheduled", "reason": None,
        "no_health_check": False,
    }
    await eventually(
        lambda: cli.ctl_json("status"),
        lambda s: s["services"].get(service, {}).get("state") == "awaiting_manual",
    )
    code, out, _ = await cli.ctl("status")
    assert code == 0 and "orchestrator running: yes" in out and service in out
    assert "awaiting_manual" in out

    code, out, err = await cli.ctl("approve", service, "--operator", "alice", "--note", "ok")
    assert code == 0, err
    attempts = await eventually(
        lambda: cli.ctl_json("history", service), lambda a: a and a[-1]["result"] == "success"
    )
    assert [a["approved_by"] for a in attempts] == ["alice"]
    code, out, _ = await cli.ctl("history", service)
    assert code == 0 and "APPROVED BY" in out and "alice: ok" in out
    recent = await eventually(
        lambda: cli.ctl_json("history"), lambda h: any(r["service_name"] == service for r in h)
    )
    assert recent[-1]["state"] == "succeeded"

    code, out, err = await cli.ctl("watch", "--count", "2", "--interval", "0.1")
    assert code == 0 and out.count("orchestrator running: yes") == 2, err

    policy = await cli.ctl_json("policy", "set", service, '{"max_retry_attempts": 3}')
    assert policy["max_retry_attempts"] == 3
    assert (await cli.ctl_json("policy", "get", service))["max_retry_attempts"] == 3


async def test_recoveryctl_execute_starts_a_queued_one_and_waits_for_the_result(
    cli: Cli, service: str
) -> None:
    await cli.ctl_json("configure", "--max-concurrent", "1")
    blocker = blocking_policy_json()
    await cli.ctl_json("schedule", f"{service}-blocker", "--policy", json.dumps(blocker))
    queued = await cli.ctl_json("schedule", service, "--strategy", "immediate")
    assert queued["outcome"] == "queued"
    # Queued, so no recovery of it runs yet: the coordinator tells where it stands.
    waiting = await cli.ctl_json("status", service)
    assert waiting["service_name"] == service and waiting["state"] == "scheduled"
    assert waiting["strategy"] == "immediate" and waiting["attempt_count"] == 0
    assert await cli.ctl_json("history", service) == []
    code, out, _ = await cli.ctl("status", service)
    assert code == 0 and "state: scheduled" in out
    result = await cli.ctl_json("execute", service)
    assert result["service_name"] == service and result["state"] == "succeeded"
    cancelled = await cli.ctl_json("cancel", f"{service}-blocker", "--reason", "done")
    assert cancelled["cancelled"] is True


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["schedule", "bad name"], 2, "service_name 'bad name' is invalid"),
        (["schedule", "ok", "--policy", '{"backoff_multiplier": 0.1}'], 2, "backoff_multiplier must be >= 1.0"),
        (["policy", "set", "ok", '{"max_delay_ms": -1}'], 2, "max_delay_ms must be >= initial_delay_ms"),
        (["approve", "nobody-here", "--operator", "a"], 2, "No active recovery task for service 'nobody-here'"),
        (["execute", "nobody-here"], 2, "No active recovery task for service 'nobody-here'"),
        (["cancel", "nobody-here"], 2, "No active recovery task for service 'nobody-here'"),
        (["status", "nobody-here"], 2, "no recovery of 'nobody-here' has ever run"),
        (["history", "nobody-here"], 2, "no recovery of 'nobody-here' has ever run"),
    ],
)
async def test_recoveryctl_refusals_are_one_line_with_an_exit_code(
    cli: Cli, argv: list[str], code: int, message: str
) -> None:
    await cli.ctl_json("configure", "--max-concurrent", "2")  # the coordinator exists
    got, out, err = await cli.ctl(*argv)
    assert got == code, err
    assert out == "" and err.count("\n") == 1 and message in err


async def test_the_temporal_cli_forms_in_the_readme_work(cli: Cli, service: str) -> None:
    coordinator = ["--workflow-id", cli.coordinator_id]

    async def update(name: str, payload: dict[str, Any]) -> tuple[int, str, str]:
        return await cli.temporal(
            "workflow", "update", "execute", *coordinator, "--name", name,
            "--input", json.dumps(payload), "-o", "json",
        )

    async def coordinator_status() -> Any:
        code, out, err = await cli.temporal(
            "workflow", "query", *coordinator, "--type", "get_recovery_status", "-o", "json"
        )
        assert code == 0, err
        return json.loads(out)["queryResult"][0]

    code, _, err = await cli.temporal(  # no --input: a fresh coordinator
        "workflow", "start", "--type", "RecoveryCoordinator", "--task-queue", cli.task_queue,
        *coordinator,
    )
    assert code == 0, err
    code, out, err = await update(
        "schedule_recovery", {"service_name": service, "strategy": "manual", "priority": 1}
    )
    assert code == 0 and '"outcome":"queued"' in out.replace(" ", ""), err
    await eventually(
        coordinator_status,
        lambda s: s["services"].get(service, {}).get("state") == "awaiting_manual",
    )
    recovery = ["--workflow-id", f"recovery-{service}"]
    code, out, err = await cli.temporal(
        "workflow", "query", *recovery, "--type", "status", "-o", "json"
    )
    assert code == 0 and json.loads(out)["queryResult"][0]["state"] == "awaiting_manual", err
    code, out, err = await cli.temporal(
        "workflow", "list", "--query",
        f"RecoveryState='awaiting_manual' AND RecoveryService='{service}'", "-o", "json",
    )
    assert code == 0 and service in out, err

    code, _, err = await cli.temporal(
        "workflow", "signal", *recovery, "--name", "approve",
        "--input", json.dumps({"operator": "alice", "note": "ok"}),
    )
    assert code == 0, err
    done = await eventually(coordinator_status, lambda s: service not in s["services"])
    assert done["recent_history"][-1]["state"] == "succeeded"

    code, _, err = await update(
        "set_recovery_policy", {"service_name": service, "policy": {"max_retry_attempts": 3}}
    )
    assert code == 0, err
    second = f"{service}-2"
    code, _, err = await update("configure", {"max_concurrent_recoveries": 1})
    assert code == 0, err
    code, _, err = await update("schedule_recovery", {"service_name": second, "strategy": "manual"})
    assert code == 0, err
    await eventually(coordinator_status, lambda s: second in s["services"])
    code, _, err = await update(
        "cancel_recovery", {"service_name": second, "reason": "maintenance"}
    )
    assert code == 0, err
    final = await eventually(coordinator_status, lambda s: second not in s["services"])
    assert final["recent_history"][-1]["error_message"] == "cancelled: maintenance"

    code, _, err = await update("shutdown", {})
    assert code == 0, err
    assert (await coordinator_status())["orchestrator_running"] is False
    code, _, err = await update("schedule_recovery", {"service_name": service})
    assert code != 0 and "not running" in err
    code, _, err = await update("configure", {"orchestrator_running": True})
    assert code == 0, err
    code, _, err = await update("schedule_recovery", {"service_name": service, "priority": "high"})
    assert code != 0 and "priority" in err


async def test_recoveryctl_approve_names_the_state_when_not_awaiting_an_operator(
    cli: Cli, service: str
) -> None:
    blocker = blocking_policy_json()
    await cli.ctl_json("schedule", service, "--policy", json.dumps(blocker))

    async def status() -> Any:
        code, out, err = await cli.ctl("--json", "status", service)
        if code != 0 and "has ever run" in err:
            return None  # scheduled, not started by the coordinator yet
        assert code == 0, err
        return json.loads(out)

    await eventually(status, lambda s: s is not None and s["phase"] == "backoff")
    code, out, err = await cli.ctl("approve", service, "--operator", "alice")
    assert code == 1 and out == "" and err.count("\n") == 1, err
    assert (
        f"Recovery of '{service}' is in_progress (phase backoff), not awaiting_manual: "
        "approval not sent"
    ) in err
    after = await cli.ctl_json("status", service)
    assert after["attempt_count"] == 1, "no approval may count"
    await cli.ctl_json("cancel", service)


async def test_recoveryctl_execute_on_a_finished_recovery_gives_its_final_result(
    cli: Cli, service: str
) -> None:
    await cli.ctl_json("schedule", service, "--strategy", "immediate")
    await eventually(
        lambda: cli.ctl_json("history"), lambda h: any(r["service_name"] == service for r in h)
    )
    result = await cli.ctl_json("execute", service)
    assert result["service_name"] == service and result["state"] == "succeeded"
    assert result["success"] is True and result["attempt_number"] == 1


async def test_recoveryctl_execute_of_a_recovery_that_fails_exits_1(cli: Cli, service: str) -> None:
    """The operation waited for did not succeed: the result is shown, and the exit says so."""
    failing = {"max_retry_attempts": 1, "health_check": {"kind": "tcp", "host": "127.0.0.1", "port": free_port()}}
    await cli.ctl_json("schedule", service, "--strategy", "manual", "--policy", json.dumps(failing))
    code, out, err = await cli.ctl("--json", "execute", service)
    assert code == 1, err
    result = json.loads(out)
    assert result["service_name"] == service and result["success"] is False
    assert result["state"] == "failed"


async def test_recoveryctl_exits_3_when_the_server_cannot_be_reached(task_queue: str) -> None:
    unreachable = Cli(f"127.0.0.1:{free_port()}", f"coordinator-{task_queue}", task_queue)
    code, out, err = await unreachable.ctl("status")
    assert code == 3 and out == "" and err.count("\n") == 1
    assert "cannot reach the Temporal server" in err


async def test_recoveryctl_piped_into_head_ends_quietly(
    cli: Cli, dev_env: WorkflowEnvironment, service: str
) -> None:
    """A reader that stops early (``| head``) gets no traceback on stderr."""
    await cli.ctl_json("configure", "--max-concurrent", "1")
    # A status document far larger than a pipe's buffer: 500 queued behind one blocker.
    await dev_env.client.get_workflow_handle(cli.coordinator_id).execute_update(
        "schedule_recoveries",
        {
            "recoveries": [
                {"service_name": f"{service}-{i:03d}", "policy": blocking_policy_json()}
                for i in range(500)
            ]
        },
    )
    ctl = Path(sys.executable).parent / "recoveryctl"
    code, out, err = await cli.run(
        "sh", "-c",
        f"'{ctl}' --coordinator-id {cli.coordinator_id} --task-queue {cli.task_queue} "
        f"--json status | head -c 10; exit ${{PIPESTATUS:-0}}",
    )
    assert len(out) == 10
    assert "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.parametrize("value", ["nan", "0", "-1", "inf", "soon"])
async def test_recoveryctl_refuses_a_timeout_that_is_no_number_of_seconds(
    cli: Cli, value: str
) -> None:
    code, _, err = await cli.ctl("--timeout", value, "status")
    assert code == 2 and "--timeout: must be a number of seconds above 0" in err


@pytest.mark.parametrize("command", ["status", "history"])
async def test_recoveryctl_an_empty_service_name_is_bad_input_not_everything(
    cli: Cli, command: str
) -> None:
    code, out, err = await cli.ctl(command, "")
    assert code == 2 and "service_name" in err and out == ""


async def test_every_command_answers_in_human_and_json_form(
    cli: Cli, dev_env: WorkflowEnvironment, service: str, tmp_path: Path
) -> None:
    """Each command once as people read it and once with ``--json`` after the command."""

    async def both(*argv: str, then: tuple[str, ...] = ()) -> Any:
        """Run ``argv`` for people, then ``then`` (default ``argv``) with ``--json`` after it."""
        code, out, err = await cli.ctl(*argv)
        assert code == 0 and out.strip() and err == "", (argv, err)
        code, out, err = await cli.ctl(*(then or argv), "--json")
        assert code == 0, (argv, err)
        return json.loads(out)

    manual = [f"{service}-manual-{i}" for i in (1, 2)]
    auto = [f"{service}-auto-{i}" for i in (1, 2)]
    assert (await both("configure", "--max-concurrent", "5"))["max_concurrent_recoveries"] == 5
    for name in manual:
        assert (await both("schedule", name, "--strategy", "manual"))["service_name"] == name
    await eventually(
        lambda: cli.ctl_json("status"),
        lambda s: all(s["services"].get(m, {}).get("state") == "awaiting_manual" for m in manual),
    )
    assert set(manual) <= set((await both("status"))["services"])
    assert (await both("status", manual[0]))["state"] == "awaiting_manual"
    set_policy = ("policy", "set", manual[0], '{"max_retry_attempts": 3}')
    assert (await both(*set_policy))["max_retry_attempts"] == 3
    assert (await both("policy", "get", manual[0]))["max_retry_attempts"] == 3
    approved = await both(
        "approve", manual[0], "--operator", "alice",
        then=("approve", manual[1], "--operator", "bob"),
    )
    assert approved == {"approved": manual[1], "operator": "bob", "attempt": 1}
    attempts = await eventually(
        lambda: both("history", manual[0]), lambda a: bool(a) and a[-1]["result"] == "success"
    )
    assert attempts[0]["approved_by"] == "alice"
    assert isinstance(await both("history"), list)
    for name in auto:
        await cli.ctl_json("schedule", name, "--policy", json.dumps(blocking_policy_json()))
    started = await both("execute", auto[0], "--no-wait", then=("execute", auto[1], "--no-wait"))
    assert started["service_name"] == auto[1]
    cancelled = await both("cancel", auto[0], then=("cancel", auto[1]))
    assert cancelled["service_name"] == auto[1] and cancelled["cancelled"] is True
    watched = await both("watch", "--count", "1", "--interval", "0.1")
    assert "services" in watched and "uncoordinated" in watched

    store = tmp_path / "b.db"
    SQLiteBreakerStore(store).close()
    listed = await both("breakers", "--store", f"sqlite:///{store}")
    assert listed == {"store": f"sqlite:///{store}", "breakers": []}
    await ensure_watch(dev_env.client, WatchInput(), task_queue=cli.task_queue)
    try:
        for action in ("disable", "enable", "status"):
            assert (await both("watch-breakers", action))["paused"] is (action == "disable")
    finally:
        await dev_env.client.get_workflow_handle(f"{CIRCUIT_WATCH_SCHEDULE_ID}-{cli.task_queue}").terminate(
            reason="test over"
        )

    code, out, err = await cli.ctl("policy", "--json", "get", manual[0])
    assert code == 0 and json.loads(out)["max_retry_attempts"] == 3, err


async def test_recoveryctl_status_marks_a_recovery_started_with_the_temporal_cli(
    cli: Cli, service: str
) -> None:
    coordinated, outside = f"{service}-c", f"{service}-x"
    await cli.ctl_json("schedule", coordinated, "--strategy", "manual")
    code, _, err = await cli.temporal(
        "workflow", "start", "--type", "ServiceRecovery", "--task-queue", cli.task_queue,
        "--workflow-id", f"recovery-{outside}",
        "--input", json.dumps({"service_name": outside, "strategy": "manual", "priority": 3}),
    )
    assert code == 0, err
    status = await eventually(
        lambda: cli.ctl_json("status"),
        lambda s: (s["uncoordinated"] or {}).get(outside, {}).get("state") == "awaiting_manual"
        and coordinated in s["services"],
    )
    entry = status["uncoordinated"][outside]
    assert entry["coordinated"] is False and entry["workflow_id"] == f"recovery-{outside}"
    assert entry["priority"] == 3 and entry["strategy"] == "manual"
    assert outside not in status["services"] and coordinated not in status["uncoordinated"]
    assert status["uncoordinated_truncated"] is False

    code, out, err = await cli.ctl("status")
    assert code == 0, err
    section = out.split("not coordinated (started outside the coordinator")[1].split("recent:")[0]
    [row] = [line.split() for line in section.splitlines() if line.startswith(outside)]
    assert row[:2] == [outside, "awaiting_manual"] and row[-1] == "no"
    assert coordinated not in section
    code, out, err = await cli.ctl("cancel", outside)
    assert code == 0, err


async def test_recoveryctl_connection_flags_win_over_the_environment(
    cli: Cli, tmp_path: Path
) -> None:
    await cli.ctl_json("configure", "--max-concurrent", "2")
    nowhere = f"127.0.0.1:{free_port()}"
    code, out, err = await cli.ctl(
        "--address", cli.address, "status", "--json", env={"TEMPORAL_ADDRESS": nowhere}
    )
    assert code == 0 and "services" in json.loads(out), err

    config = tmp_path / "temporal.toml"
    config.write_text(
        f'[profile.default]\naddress = "{nowhere}"\n[profile.here]\naddress = "{cli.address}"\n'
    )
    profile_env = {"TEMPORAL_ADDRESS": "", "TEMPORAL_CONFIG_FILE": str(config)}
    code, _, err = await cli.ctl("status", env=profile_env)
    assert code == 3 and nowhere in err
    code, out, err = await cli.ctl("--profile", "here", "status", "--json", env=profile_env)
    assert code == 0 and "services" in json.loads(out), err
    code, out, err = await cli.ctl("--profile", "missing", "status", env=profile_env)
    assert (code, out) == (2, "") and "Profile 'missing' not found" in err

    code, out, err = await cli.ctl("--namespace", "no-such-namespace", "status")
    assert (code, out) == (2, "") and err.count("\n") == 1 and "no-such-namespace" in err, err


async def test_recoveryctl_watch_redraws_in_place_on_a_terminal(cli: Cli, service: str) -> None:
    await cli.ctl_json("schedule", service, "--strategy", "manual")
    primary, secondary = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "recoveryctl"),
        "--coordinator-id", cli.coordinator_id, "--task-queue", cli.task_queue,
        "watch", "--count", "3", "--interval", "0.2",
        env=dict(os.environ, TEMPORAL_ADDRESS=cli.address, TERM="xterm", COLUMNS="200"),
        stdout=secondary, stderr=asyncio.subprocess.PIPE,
    )
    os.close(secondary)
    screen, (_, err) = await asyncio.gather(
        asyncio.to_thread(_read_terminal, primary), process.communicate()
    )
    assert process.returncode == 0, err
    assert screen.count("orchestrator running") >= 3 and service in screen
    assert "\x1b[1A" in screen and "\x1b[2K" in screen, "each refresh moves up and redraws"
    assert "every 0.2 s" in screen


def _read_terminal(fd: int) -> str:
    """Read what a process wrote to a pseudo-terminal until it closes."""
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:  # EIO: the writer closed its end
        pass
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace")


async def test_bare_configure_shows_refused_requests_and_changes_nothing(cli: Cli) -> None:
    """What a malformed signal left behind is one command away, and reading it writes nothing."""
    await cli.ctl_json("configure", "--max-concurrent", "2")  # the coordinator exists
    code, _, err = await cli.temporal(
        "workflow", "signal", "--workflow-id", cli.coordinator_id, "--name", "schedule_recovery",
        "--input", json.dumps({"service_name": "ok", "priority": "high"}),
    )
    assert code == 0, err

    async def length() -> int:
        code, out, err = await cli.temporal(
            "workflow", "describe", "--workflow-id", cli.coordinator_id, "-o", "json"
        )
        assert code == 0, err
        return int(json.loads(out)["workflowExecutionInfo"]["historyLength"])

    shown = await eventually(
        lambda: cli.ctl_json("configure"), lambda c: c["rejected_signals"]
    )
    assert "priority" in shown["rejected_signals"][-1]
    assert shown["config"]["max_concurrent_recoveries"] == 2
    before = await length()
    code, out, err = await cli.ctl("configure")
    assert code == 0 and "priority" in out, err
    assert await length() == before


async def test_no_worker_polling_is_said_after_the_timeout(
    cli: Cli, dev_env: WorkflowEnvironment
) -> None:
    """A coordinator whose task queue nobody polls: the read gives up and says why."""
    queue = f"{cli.task_queue}-unpolled"
    await dev_env.client.start_workflow(
        "RecoveryCoordinator", id=f"coordinator-{queue}", task_queue=queue
    )
    code, _, err = await cli.run(
        str(Path(sys.executable).parent / "recoveryctl"),
        "--coordinator-id", f"coordinator-{queue}", "--task-queue", queue, "--timeout", "1",
        "status",
    )
    assert code == 1, err
    assert f"no answer within 1s: is a worker polling task queue {queue!r}?" in err
