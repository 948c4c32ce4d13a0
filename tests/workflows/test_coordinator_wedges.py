"""Single messages that used to fail the coordinator's workflow task (issue 18, row 7).

Each is refused at the door by a strict model (naive times, huge counts, unbounded
settings, dependency cycles), so no handler meets it.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.health_check_specs import TcpHealthCheck
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from tests.helpers.policies import blocking_policy
from tests.helpers.recoveries import is_running
from tests.helpers.waiting import eventually
from tests.helpers.workers import orchestrator_on
from workflows.carried_state import CoordinatorConfig, CoordinatorState
from workflows.constants import recovery_workflow_id
from workflows.coordinator_models import ConfigureInput, CoordinatorInput, ScheduleRecoveryInput
from workflows.coordinator_state import RecoveryLedger
from workflows.errors import RecoveryValidationError
from workflows.models import RecoveryPolicy, RecoveryReport, RecoveryStrategy

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def forged_report(service: str, **status: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "service_name": service,
        "state": "in_progress",
        "strategy": "exponential_backoff",
        "priority": 1,
        "attempt_count": 1,
        "max_attempts": 5,
        "scheduled_at": "2030-01-01T00:00:00+00:00",
        "phase": "backoff",
    }
    entry.update(status)
    return {"service_name": service, "run_id": "forged", "sequence": 1, "status": entry}


def test_a_naive_breaker_opened_at_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        ScheduleRecoveryInput(service_name="api", breaker_opened_at="2030-01-01T00:00:00")


@pytest.mark.parametrize(
    "status",
    [
        {"attempt_count": 2**70},
        {"attempt_count": -1},
        {"last_attempt_at": "2030-01-01T00:00:00"},
        {"scheduled_at": "2030-01-01T00:00:00"},
        {"service_name": "someone-else"},
    ],
)
def test_a_forged_report_out_of_bounds_is_refused(status: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RecoveryReport.model_validate(forged_report("api", **status))


def test_a_reports_sequence_is_a_number_not_a_boolean() -> None:
    with pytest.raises(ValidationError, match="sequence"):
        RecoveryReport.model_validate({**forged_report("api"), "sequence": True})


def test_a_coordinators_own_settings_are_bounded_like_configure() -> None:
    for bad in ({"max_concurrent_recoveries": 0}, {"continue_as_new_after_events": 1}):
        with pytest.raises(ValueError):
            CoordinatorInput(config=CoordinatorConfig(**bad))
    # A carried state keeps whatever an older run held.
    carried = CoordinatorState(config=CoordinatorConfig(continue_as_new_after_events=1))
    assert CoordinatorInput(state=carried).state is not None


def test_a_default_policy_with_depends_on_is_refused() -> None:
    with pytest.raises(ValueError, match="default_policy.depends_on must be empty"):
        ConfigureInput(default_policy=RecoveryPolicy(depends_on=["db"]))


def test_a_policy_that_names_its_own_service_or_closes_a_cycle_is_refused() -> None:
    book = RecoveryLedger(CoordinatorState())
    with pytest.raises(RecoveryValidationError, match="names the service itself"):
        book.check_policy_dependencies("api", RecoveryPolicy(depends_on=["api"]))
    book.set_policy("api", RecoveryPolicy(depends_on=["db"]))
    with pytest.raises(RecoveryValidationError, match="depends_on cycle: db -> api -> db"):
        book.check_policy_dependencies("db", RecoveryPolicy(depends_on=["api"]))
    book.check_policy_dependencies("db", RecoveryPolicy(depends_on=["cache"]))


def test_one_cycle_in_an_automatic_batch_leaves_the_rest_to_start() -> None:
    book = RecoveryLedger(CoordinatorState())
    book.schedule(ScheduleRecoveryInput(service_name="db", policy=RecoveryPolicy(depends_on=["api"])), NOW)
    batch = [
        ScheduleRecoveryInput(service_name="api", policy=RecoveryPolicy(depends_on=["db"])),
        ScheduleRecoveryInput(service_name="unrelated"),
    ]
    results = book.schedule_automatically(batch, NOW)
    assert [r.outcome for r in results] == ["refused", "queued"]
    assert "depends_on cycle" in (results[0].reason or "")


def test_booleans_are_not_numbers_in_health_checks() -> None:
    with pytest.raises(ValidationError, match="port must be a number"):
        TcpHealthCheck.model_validate({"host": "db", "port": True})
    with pytest.raises(ValidationError, match="timeout_ms must be a number"):
        TcpHealthCheck.model_validate({"host": "db", "port": 5432, "timeout_ms": True})


@pytest.mark.timeout(90)
async def test_forged_messages_leave_the_coordinator_answering(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    guarded = blocking_policy().model_copy(update={"max_attempts_per_hour": 3})
    async with orchestrator_on(dev_env, store, task_queue) as orch:
        await orch.schedule_recovery(service, policy=guarded)
        await eventually(
            orch.get_recovery_status,
            lambda s: s["services"].get(service, {}).get("state") == "in_progress",
        )
        run_id = (await dev_env.client.get_workflow_handle(recovery_workflow_id(service)).describe()).run_id
        handle = dev_env.client.get_workflow_handle(f"coordinator-{task_queue}")
        # A report of the running recovery's own run (what `temporal workflow signal` can send).
        for status in ({"attempt_count": 2**70}, {"last_attempt_at": "2030-01-01T00:00:00"}):
            report = forged_report(service, **status) | {"run_id": run_id, "sequence": 1000}
            await handle.signal("recovery_report", report)
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(
                "schedule_recoveries",
                {
                    "recoveries": [
                        {"service_name": service, "breaker_opened_at": "2030-01-01T00:00:00"}
                    ],
                    "automatic": True,
                },
            )
        configuration = await eventually(
            lambda: handle.query("get_configuration"),
            lambda c: len(c["rejected_signals"]) >= 2,
        )
        assert all("recovery_report signal" in r for r in configuration["rejected_signals"][-2:])
        # Still answering updates at once: no task failed.
        await orch.schedule_recovery(f"{service}-after")
        history = await handle.fetch_history()
        failed = [e for e in history.events if e.HasField("workflow_task_failed_event_attributes")]
        assert failed == []


@pytest.mark.parametrize(
    "status",
    [{"scheduled_at": "9999-12-31T23:59:59.999999+00:00"}, {"last_attempt_at": "1970-01-01T00:00:00+00:00"}],
)
def test_a_report_dated_outside_the_years_2000_to_2200_is_refused(status: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="between the years 2000 and 2200"):
        RecoveryReport.model_validate(forged_report("api", **status))


def test_a_breaker_opened_at_outside_the_years_2000_to_2200_is_refused() -> None:
    with pytest.raises(ValueError, match="between the years 2000 and 2200"):
        ScheduleRecoveryInput(service_name="api", breaker_opened_at="9999-12-31T23:59:59+00:00")


@pytest.mark.timeout(90)
async def test_a_report_from_the_future_or_past_9999_is_refused_and_the_coordinator_answers(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue) as orch:
        await orch.schedule_recovery(service, strategy=RecoveryStrategy.MANUAL)
        handle = dev_env.client.get_workflow_handle(f"coordinator-{task_queue}")
        run_id = await eventually(
            lambda: _run_id(dev_env, service), lambda r: r is not None
        )
        for stamp in ("9999-12-31T23:59:59.999999+00:00", "2150-01-01T00:00:00+00:00"):
            forged = forged_report(service, state="failed") | {"run_id": run_id, "sequence": 50}
            forged["result"] = {
                "service_name": service, "success": False, "attempt_number": 1,
                "total_attempts": 5, "elapsed_time_ms": 1.0, "state": "failed",
                "timestamp": stamp,
            }
            await handle.signal("recovery_report", forged)
        configuration = await eventually(
            lambda: handle.query("get_configuration"),
            lambda c: len(c["rejected_signals"]) >= 2,
        )
        assert "from the future" in configuration["rejected_signals"][-1]
        status = await orch.get_recovery_status(max_staleness=0)
        assert status["services"][service]["state"] == "awaiting_manual"  # still running
        history = await handle.fetch_history()
        assert not [e for e in history.events if e.HasField("workflow_task_failed_event_attributes")]


async def _run_id(dev_env: WorkflowEnvironment, service: str) -> str | None:
    try:
        return (await dev_env.client.get_workflow_handle(recovery_workflow_id(service)).describe()).run_id
    except Exception:  # noqa: BLE001 (not started yet)
        return None


@pytest.mark.timeout(90)
async def test_the_pause_past_the_limit_is_refused_by_the_validator(
    dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    from datetime import timedelta

    from workflows.coordinator import RecoveryCoordinator
    from workflows.carried_state import Pause
    from workflows.coordinator_state import MAX_PAUSED
    from tests.helpers.workers import running_worker

    until = datetime.now(timezone.utc) + timedelta(days=1)
    state = CoordinatorState(
        paused={f"svc-{n}": Pause(until=until, reason="full") for n in range(MAX_PAUSED)}
    )
    store = SQLiteBreakerStore(":memory:")
    async with running_worker(dev_env.client, store, task_queue):
        handle = await dev_env.client.start_workflow(
            RecoveryCoordinator.run,
            CoordinatorInput(state=state),
            id=f"coordinator-{task_queue}",
            task_queue=task_queue,
        )
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                "pause_service", {"service_name": "one-more", "duration_s": 60}
            )
        cause = refused.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.details[0]["code"] == "too_many_paused"
        history = await handle.fetch_history()
        assert not [e for e in history.events if e.HasField("workflow_task_failed_event_attributes")]
        await handle.terminate()


@pytest.mark.timeout(60)
async def test_a_forged_success_does_not_outlive_the_real_failure(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    """A report can be forged by anyone who may signal; the child's close cannot: it wins."""
    from tests.helpers.servers import free_port

    failing = RecoveryPolicy(
        max_retry_attempts=2,
        initial_delay_ms=1000,
        max_delay_ms=1000,
        health_check=TcpHealthCheck(host="127.0.0.1", port=free_port(), timeout_ms=300),
    )
    async with orchestrator_on(dev_env, store, task_queue) as orch:
        await orch.schedule_recovery(service, policy=failing)
        await eventually(
            orch.get_recovery_status,
            lambda s: s["services"].get(service, {}).get("state") == "in_progress",
        )
        recovery = dev_env.client.get_workflow_handle(recovery_workflow_id(service))
        # The coordinator says in_progress once it asked for the child: wait for the server's word.
        await eventually(lambda: is_running(recovery), bool)
        run_id = (await recovery.describe()).run_id
        now = datetime.now(timezone.utc).isoformat()
        forged = forged_report(service, state="succeeded", phase="finished", scheduled_at=now)
        forged |= {
            "run_id": run_id,
            "sequence": 9_999_999,
            "result": {
                "service_name": service, "success": True, "attempt_number": 1,
                "total_attempts": 2, "elapsed_time_ms": 1.0, "state": "succeeded",
                "health_check_passed": True, "timestamp": now,
            },
        }
        await dev_env.client.get_workflow_handle(f"coordinator-{task_queue}").signal(
            "recovery_report", forged
        )
        status = await eventually(
            orch.get_recovery_status,
            lambda s: any(
                r["service_name"] == service and r["state"] == "failed" for r in s["recent_history"]
            ),
            timeout=30,
        )
    latest = [r for r in status["recent_history"] if r["service_name"] == service][-1]
    assert latest["state"] == "failed" and latest["success"] is False
    assert service in status.get("held_back", {}), "the failure's cool-down holds automation off"
