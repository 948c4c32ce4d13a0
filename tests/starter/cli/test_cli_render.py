"""What ``recoveryctl`` shows people, without a server: yes/no, rounded durations, outcomes.

Each case renders a document shaped as the coordinator or a recovery answers, as
``recoveryctl`` prints it in a pipe (plain text, no colour).
"""

from __future__ import annotations

import re
import shlex
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from activities.health_check_specs import HealthCheckOutcome
from starter.cli import render
from starter.cli import text as cli_text
from starter.cli.views import Attempts, RecentHistory, Status
from workflows.coordinator_models import (
    CancelRecoveryResult,
    PauseServiceResult,
    ResumeServiceResult,
)
from workflows.models import AttemptRecord, RecoveryResult, RecoveryState

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def _text(value: Any) -> str:
    return render.render(value, as_json=False)


def _status(**extra: Any) -> dict[str, Any]:
    return {
        "orchestrator_running": True, "active_recoveries": 1, "queued_recoveries": 0,
        "services": {}, "recent_history": [], **extra,
    }


def _result(**fields: Any) -> RecoveryResult:
    defaults: dict[str, Any] = {
        "service_name": "api", "success": True, "attempt_number": 1, "total_attempts": 3,
        "elapsed_time_ms": 2345.6789, "state": RecoveryState.SUCCEEDED, "timestamp": NOW,
    }
    return RecoveryResult(**{**defaults, **fields})


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.0123, "12 ms"), (2.3456789, "2.3 s"), (45.2, "45 s"), (240.4, "4 min"),
        (90, "1.5 min"), (5400, "1.5 h"), (86_400 * 2, "2 d"), (None, "-"), (-3, "0 ms"),
    ],
)
def test_durations_are_rounded_in_a_unit_people_read(seconds: float | None, shown: str) -> None:
    assert cli_text.human_duration(seconds) == shown


def test_a_result_shows_yes_no_and_a_rounded_elapsed_time_never_python_values() -> None:
    text = _text(_result(health_check_passed=True))
    assert "True" not in text and "False" not in text
    assert "success: yes" in text and "health_check_passed: yes" in text
    assert "elapsed_time_ms: 2.3 s" in text and "2345.6789" not in text
    assert re.search(r"^state: succeeded$", text, re.M), text


def test_a_success_without_a_health_check_does_not_read_as_a_verified_one() -> None:
    text = _text(_result(health_check_passed=False))
    assert "state: succeeded (closed without a health check)" in text
    assert "health_check_passed: no" in text
    # The JSON keeps the reference shape: the state is the state.
    assert '"state": "succeeded"' in render.render(_result(), as_json=True)


def test_recent_history_and_the_status_mark_unchecked_successes() -> None:
    unchecked = _result(service_name="blind").to_dict()
    checked = _result(service_name="seen", health_check_passed=True).to_dict()
    failed = _result(
        service_name="down", success=False, state=RecoveryState.FAILED, error_message="boom"
    ).to_dict()
    history = _text(RecentHistory([unchecked, checked, failed]))
    rows = {line.split()[0]: line for line in history.splitlines()[1:]}
    assert "succeeded (closed without a health check)" in rows["blind"]
    assert "without" not in rows["seen"] and " succeeded " in rows["seen"]
    assert " failed " in rows["down"] and "boom" in rows["down"]
    assert "2.3 s" in rows["blind"]
    status = _text(Status(_status(recent_history=[unchecked])))
    assert "succeeded (closed without a health check)" in status


def test_status_shows_paused_and_held_back_services_with_until_and_why() -> None:
    until = (NOW + timedelta(hours=2)).isoformat()
    status = _status(
        paused={"api": {"until": until, "reason": "db migration"}},
        held_back={
            "db": {
                "until": until, "reason": "cool-down after 2 failed recoveries in a row",
                "attempts_last_hour": 2, "max_attempts_per_hour": 0,
            }
        },
    )
    text = _text(Status(status))
    paused = text.split("paused (")[1].split("held back (")[0]
    assert re.search(r"^api\s+2026-12-06 14:00:00\s+db migration$", paused, re.M), paused
    held = text.split("held back (")[1]
    assert re.search(r"^db\s+2026-12-06 14:00:00\s+cool-down after 2 failed", held, re.M), held


def test_status_without_pauses_or_holds_has_no_such_sections() -> None:
    text = _text(Status(_status()))
    assert "paused (" not in text and "held back (" not in text


def test_status_says_what_an_awaiting_manual_recovery_waits_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "alice")
    entry = {
        "state": "awaiting_manual", "strategy": "manual", "priority": 1, "attempt_count": 0,
        "max_attempts": 3, "next_attempt_at": None,
    }
    queued = {**entry, "state": "scheduled", "reason": "waiting for 'db'"}
    text = _text(Status(_status(services={"payments": entry, "api": queued})))
    [row] = [line for line in text.splitlines() if line.startswith("payments ")]
    assert row.endswith("waiting for an operator: recoveryctl approve payments --operator alice")
    [row] = [line for line in text.splitlines() if line.startswith("api ")]
    assert row.endswith("waiting for 'db'"), "the coordinator's own reason stands"


def test_the_approve_command_pastes_into_a_shell_whatever_the_user_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "o'brien $(rm -rf x)")
    command = cli_text.approve_command("payments", "/opt/my venv/bin/recoveryctl")
    assert shlex.split(command) == [
        "/opt/my venv/bin/recoveryctl", "approve", "payments", "--operator", "o'brien $(rm -rf x)",
    ]

    def nobody() -> str:
        raise OSError("no login name")

    monkeypatch.setattr("getpass.getuser", nobody)
    assert cli_text.approve_command("payments") == "recoveryctl approve payments --operator operator"


def test_attempts_show_the_wait_rounded_and_unchecked_successes() -> None:
    started = NOW
    checked = HealthCheckOutcome(passed=True, detail="HTTP 200", duration_ms=3)
    attempts = [
        AttemptRecord(attempt=1, started_at=started, delay_ms=0, result="failure", error="x"),
        AttemptRecord(attempt=2, started_at=started, delay_ms=120_000, result="success"),
        AttemptRecord(
            attempt=3, started_at=started, delay_ms=2_345, result="success", health_check=checked
        ),
    ]
    text = _text(Attempts(attempts))
    rows = {line.split()[0]: line for line in text.splitlines()[1:]}
    assert "0 ms" in rows["1"]
    assert "2 min" in rows["2"] and "120000" not in rows["2"]
    assert "success (closed without a health check)" in rows["2"]
    assert "none configured" in rows["2"]
    assert "2.3 s" in rows["3"] and "without" not in rows["3"] and "HTTP 200" in rows["3"]


def test_pause_and_resume_answers_read_as_sentences() -> None:
    until = datetime.now(timezone.utc) + timedelta(hours=2)
    paused = _text(PauseServiceResult(service_name="api", until=until, reason="db migration"))
    assert paused.startswith(f"paused api until {until.isoformat()[:19].replace('T', ' ')} UTC")
    assert "(for 2 h)" in paused
    assert "db migration" in paused and "recoveryctl resume api" in paused
    lifted = ResumeServiceResult(
        service_name="api", resumed=True, lifted=["paused", "hold after an operator's cancel"]
    )
    assert _text(lifted) == "resumed api: lifted the pause, hold after an operator's cancel"
    nothing = _text(ResumeServiceResult(service_name="api", resumed=False, lifted=[]))
    assert nothing.startswith("nothing held api back")


def test_any_other_answer_shows_yes_no_and_rounded_numbers() -> None:
    text = _text(CancelRecoveryResult(service_name="api", cancelled=True, was="in_progress"))
    assert "cancelled: yes" in text and "True" not in text
    text = _text({"ratio": 0.123456789, "interval_seconds": 10.0, "ok": False, "none": None})
    assert text.splitlines() == ["ratio: 0.123", "interval_seconds: 10 s", "ok: no", "none: -"]


def test_attempts_say_what_a_success_rests_on() -> None:
    trial = AttemptRecord(attempt=1, started_at=NOW, result="success", evidence="breaker_trial")
    nothing = AttemptRecord(
        attempt=2, started_at=NOW, result="success", evidence="none", breaker_found=False
    )
    text = _text(Attempts([trial, nothing]))
    rows = {line.split()[0]: line for line in text.splitlines()[1:]}
    assert "the service's own calls closed its breaker" in rows["1"]
    assert "watched the breaker's own trial" in rows["1"]
    assert "no breaker in the store, no health check" in rows["2"]


def test_an_operators_schedule_answer_does_not_print_automations_flag() -> None:
    from workflows.coordinator_models import ScheduleRecoveryResult

    answer = ScheduleRecoveryResult(service_name="api", outcome="queued", state="scheduled")
    assert "no_health_check" not in _text(answer)
    flagged = answer.model_copy(update={"no_health_check": True})
    assert "no_health_check: yes" in _text(flagged)


def test_the_demo_table_is_the_same_borderless_table_in_a_pipe() -> None:
    from starter.devtools.demo_view import Row, table

    rows = [
        Row("demo-api", 1, "down", "open", "in_progress", "-", "attempt 1/8: [waiting]"),
        Row("demo-payments", 3, "down", "open", "awaiting_manual", "503", ""),
    ]
    assert render.plain_text(table(rows)).splitlines() == [
        "SERVICE        PRI  HEALTH  BREAKER  RECOVERY         LAST CALL  DETAIL",
        "demo-api       1    down    open     in_progress      -          attempt 1/8: [waiting]",
        "demo-payments  3    down    open     awaiting_manual  503",
    ]


def test_recoveryctl_hides_the_sdks_scheme_warning_and_leaves_the_callers_filters(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import warnings

    from starter.cli import run

    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")  # restored after: run() sets it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        before = list(warnings.filters)
        code = run(["--address", "http://127.0.0.1:1", "--timeout", "5", "status"])
        assert warnings.filters == before
        warnings.warn("Target host as URL with scheme: the caller's own", UserWarning)
    assert code == 3
    assert [str(w.message) for w in caught] == ["Target host as URL with scheme: the caller's own"]
    assert capsys.readouterr().err.count("\n") == 1


def test_an_address_pasted_with_a_password_is_not_echoed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from starter.cli import run

    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")  # restored after: run() sets it
    code = run(["--address", "ops:hunter2@127.0.0.1:1", "--timeout", "5", "status"])
    err = capsys.readouterr().err
    assert code == 3
    assert "hunter2" not in err
    assert "***@127.0.0.1:1" in err


def test_a_server_that_never_answers_is_unreachable_whatever_the_timeout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    from starter.cli import run

    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")  # restored after: run() sets it
    with socket.socket() as silent:  # takes connections (the kernel does), answers nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        code = run(["--address", f"127.0.0.1:{port}", "--timeout", "2", "status"])
    err = capsys.readouterr().err
    assert code == 3, err  # not "is a worker polling?": nothing was sent
    assert f"cannot reach the Temporal server at 127.0.0.1:{port}" in err
