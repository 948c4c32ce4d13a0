"""Nothing wedges or wipes the coordinator: hostile input, races, failing lookups, limits.

Every test drives the coordinator the way a script or the ``temporal`` CLI would
(raw updates and signals, no facade), then checks what the server recorded: no
``WorkflowTaskFailed`` anywhere in the coordinator's history, and a good recovery
still completes afterwards.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
import pytest_asyncio
from temporalio import activity
from temporalio.api.enums.v1 import WorkflowTaskFailedCause
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue, WorkflowIDConflictPolicy
from temporalio.testing import WorkflowEnvironment
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from activities.circuit_breakers import CircuitBreakerActivities
from activities.health_check_specs import HttpHealthCheck
from activities.health_checks import HealthCheckActivities
from activities.workflow_lookup import ClosedRun, FindClosedRunsInput
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.client.coordinator_client import CoordinatorClient
from starter.client.recoveries import final_result, recovery_handle
from tests.helpers.histories import record_history
from tests.helpers.never_closing import NeverClosingRecovery
from tests.helpers.policies import blocking_policy_json
from tests.helpers.raw_coordinator import Coordinator, passing_refusals_resent
from tests.helpers.recoveries import BENIGN_CAUSES
from tests.helpers.waiting import eventually
from tests.helpers.workers import running_worker
import worker
from worker import WORKFLOWS
from workflows.constants import COORDINATOR_WORKFLOW
from workflows.coordinator_models import ScheduleRecoveriesInput, ScheduleRecoveryInput
from workflows.errors import RecoveryValidationError
from workflows.models import RecoveryPolicy
from workflows.service_recovery import ServiceRecovery

pytestmark = pytest.mark.timeout(180)

HASH = "cdd01ef066bc6cf2"


async def start_coordinator(client: Client, task_queue: str, **config: Any) -> WorkflowHandle[Any, Any]:
    handle = await client.start_workflow(
        COORDINATOR_WORKFLOW,
        {"config": config} if config else None,
        id=f"coordinator-{task_queue}",
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    await handle.execute_update("configure", {})  # its first workflow task has run
    return handle


@pytest_asyncio.fixture
async def coordinator(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str
) -> AsyncIterator[Coordinator]:
    async with running_worker(dev_env.client, store, task_queue):
        handle = await start_coordinator(dev_env.client, task_queue, max_concurrent_recoveries=2)
        yield Coordinator(
            dev_env.client, handle, task_queue, dev_env.client.service_client.config.target_host
        )


def blocking(service: str, **fields: Any) -> dict[str, Any]:
    """A schedule_recovery input whose recovery cannot finish by itself."""
    return {
        "service_name": service,
        "policy": blocking_policy_json(),
        **fields,
    }


# ----- A1: any payload count and shape ----------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "takes one JSON object (ScheduleRecoveryInput), got 0 inputs"),
        ([{"service_name": "a"}, {"service_name": "b"}], "got 2 inputs"),
        ([None], "got null"),
        (["just text"], "got str"),
        ([{"service_name": "ok", "priority": 2**63}], "priority"),
        ([{"service_name": "ok", "policy": {"max_retry_attempts": 10**6}}], "max_retry_attempts must be <= 1000"),
    ],
    ids=["none", "two", "null", "text", "priority-2^63", "attempts-1e6"],
)
async def test_a_bad_schedule_signal_is_recorded_as_rejected_and_nothing_wedges(
    coordinator: Coordinator, service: str, args: list[Any], expected: str
) -> None:
    await coordinator.handle.signal("schedule_recovery", args=args)
    info = await eventually(coordinator.configuration, lambda c: bool(c["rejected_signals"]))
    assert expected in info["rejected_signals"][-1]
    assert (await coordinator.status())["services"] == {}
    await coordinator.assert_still_recovers(service)


@pytest.mark.parametrize(
    "name",
    ["schedule_recovery", "schedule_recoveries", "cancel_recovery", "execute_recovery",
     "set_recovery_policy"],
)
async def test_updates_with_no_input_or_two_are_refused_with_a_clear_error(
    coordinator: Coordinator, name: str
) -> None:
    before = len(await coordinator.events())
    for args in ([], [{"service_name": "a"}, {"service_name": "b"}]):
        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await coordinator.update(name, *args)
        assert f"{name} takes one JSON object" in str(caught.value.cause)
        assert f"got {len(args)} inputs" in str(caught.value.cause)
    assert len(await coordinator.events()) == before, "a rejected update writes no history"


async def test_a_bad_report_signal_changes_nothing(coordinator: Coordinator, service: str) -> None:
    await coordinator.handle.signal("recovery_report", args=[])
    await coordinator.handle.signal("recovery_report", {"service_name": "x"})
    info = await eventually(coordinator.configuration, lambda c: len(c["rejected_signals"]) == 2)
    assert all("recovery_report signal" in line for line in info["rejected_signals"])
    await coordinator.assert_still_recovers(service)


async def test_the_temporal_cli_cannot_wedge_it(coordinator: Coordinator, service: str) -> None:
    """The forms an operator might type: no input, two inputs, JSON infinity."""
    cid = coordinator.handle.id
    code, out = await coordinator.temporal(
        "workflow", "signal", "--workflow-id", cid, "--name", "schedule_recovery"
    )
    assert code == 0, out
    code, out = await coordinator.temporal(
        "workflow", "signal", "--workflow-id", cid, "--name", "schedule_recovery",
        "--input", '{"service_name": "a"}', "--input", '{"service_name": "b"}',
    )
    assert code == 0, out
    code, out = await coordinator.temporal(
        "workflow", "update", "execute", "--workflow-id", cid, "--name", "set_recovery_policy",
        "--input", '{"service_name": "a", "policy": {"backoff_multiplier": 1e400}}',
    )
    assert code != 0 and "backoff_multiplier" in out and "finite" in out, out
    code, out = await coordinator.temporal(
        "workflow", "update", "execute", "--workflow-id", cid, "--name", "schedule_recovery",
        "--input", json.dumps({"service_name": "a", "priority": 2**63}),
    )
    assert code != 0 and "priority" in out, out
    info = await eventually(coordinator.configuration, lambda c: len(c["rejected_signals"]) == 2)
    assert "got 0 inputs" in info["rejected_signals"][0]
    assert "got 2 inputs" in info["rejected_signals"][1]
    await coordinator.assert_still_recovers(service)


async def test_a_coordinator_started_with_two_inputs_fails_cleanly(
    dev_env: WorkflowEnvironment, task_queue: str, store: SQLiteBreakerStore
) -> None:
    async with running_worker(dev_env.client, store, task_queue):
        handle = await dev_env.client.start_workflow(
            COORDINATOR_WORKFLOW, args=[{}, {}], id=f"coordinator-{task_queue}", task_queue=task_queue
        )
        with pytest.raises(Exception) as caught:
            await asyncio.wait_for(handle.result(), timeout=20)
    assert "RecoveryCoordinator input takes one JSON object" in str(caught.value.__cause__)


# ----- A3: hostile numbers never reach the carried state ------------------------------


async def force_continue_as_new(coordinator: Coordinator) -> str:
    """Make the coordinator hand over to a new run now, with cheap updates; return the old run's id."""
    first = (await coordinator.handle.describe()).run_id
    assert first is not None
    await coordinator.update("configure", {"continue_as_new_after_events": 100})
    for i in range(60):
        if (await coordinator.handle.describe()).run_id != first:
            return first
        await coordinator.update("configure", {"recent_history_size": 10 + i % 2})
    await eventually(coordinator.handle.describe, lambda d: d.run_id != first, timeout=20)
    return first


@pytest.mark.parametrize(
    ("name", "payload", "field"),
    [
        ("set_recovery_policy", '{"service_name": "p", "policy": {"backoff_multiplier": 1e400}}', "backoff_multiplier"),
        ("schedule_recovery", '{"service_name": "p", "priority": 9223372036854775808}', "priority"),
        ("schedule_recovery", '{"service_name": "p", "policy": {"initial_delay_ms": 1e400}}', "initial_delay_ms"),
        ("configure", '{"default_policy": {"backoff_multiplier": NaN}}', "input"),
        ("configure", '{"max_concurrent_recoveries": 1e400}', "max_concurrent_recoveries"),
    ],
    ids=["multiplier-inf", "priority-2^63", "delay-inf", "nan", "slots-inf"],
)
async def test_a_hostile_number_is_refused_and_the_next_run_holds_the_same_state(
    coordinator: Coordinator, service: str, name: str, payload: str, field: str
) -> None:
    await coordinator.update("set_recovery_policy", {"service_name": f"{service}-kept", "policy": {"max_retry_attempts": 7}})
    await coordinator.update("schedule_recovery", blocking(f"{service}-running"))
    await coordinator.update("schedule_recovery", blocking(f"{service}-a"))
    await coordinator.update("schedule_recovery", blocking(f"{service}-queued", priority=3))
    await eventually(  # both running ones wait out their hour: nothing moves any more
        coordinator.status,
        lambda s: all(
            s["services"][f"{service}-{n}"]["next_attempt_at"] is not None for n in ("running", "a")
        ),
    )
    code, out = await coordinator.temporal(
        "workflow", "update", "execute", "--workflow-id", coordinator.handle.id,
        "--name", name, "--input", payload,
    )
    assert code != 0 and field in out, out
    before = await coordinator.status()
    handed_over = await force_continue_as_new(coordinator)
    after = await coordinator.status()
    for document in (before, after):
        document.pop("timestamp")
    assert after == before
    # The Web UI page of the run that handed over says it is not the live one.
    old_run = coordinator.client.get_workflow_handle(coordinator.handle.id, run_id=handed_over)
    metadata = await old_run.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert metadata.current_details.startswith("**Not the live run**: this run handed over")
    policy = await coordinator.handle.query("get_recovery_policy", {"service_name": f"{service}-kept"})
    assert policy["max_retry_attempts"] == 7
    await coordinator.assert_never_failed_a_task()


# ----- A2, B6, B7: races of shutdown and cancel with recoveries of their own ----------


async def test_shutdown_racing_recoveries_that_finish_on_their_own_never_fails_a_task(
    coordinator: Coordinator, service: str
) -> None:
    """Dozens of rounds: IMMEDIATE recoveries end in ~0.3 s while shutdown cancels them."""
    await coordinator.update("configure", {"max_concurrent_recoveries": 8})
    for round in range(24):
        names = [f"{service}-r{round}-{i}" for i in range(6)]
        await coordinator.update(
            "schedule_recoveries",
            {"recoveries": [{"service_name": n, "strategy": "immediate"} for n in names]},
        )
        await asyncio.sleep(0.05 * (round % 8))
        result = await coordinator.update("shutdown", {"reason": f"round {round}"})
        status = await coordinator.status()
        assert (status["active_recoveries"], status["queued_recoveries"]) == (0, 0), result
        await coordinator.update("configure", {"orchestrator_running": True})
    await coordinator.assert_still_recovers(service)
    record_history(await coordinator.handle.fetch_history(), "coordinator_shutdown_races")


async def test_a_cancel_right_after_scheduling_always_sticks_and_shows_at_once(
    coordinator: Coordinator, service: str
) -> None:
    """Dozens of rounds of schedule-then-cancel, the child at every stage of its start."""
    names = [f"{service}-c{i}" for i in range(30)]
    for i, name in enumerate(names):
        await coordinator.update("schedule_recovery", blocking(name))
        if i % 3:
            await asyncio.sleep(0.02 * (i % 5))
        result = await coordinator.update("cancel_recovery", {"service_name": name, "reason": "oops"})
        assert result["cancelled"] is True
        status = await coordinator.status()
        assert name not in status["services"]
        assert status["recent_history"][-1]["service_name"] == name
        assert status["recent_history"][-1]["state"] == "cancelled"
    for name in names:
        recovery = recovery_handle(coordinator.client, name)
        try:
            result = await asyncio.wait_for(final_result(recovery), timeout=20)
        except RPCError as err:  # a child cancelled before it ever started does not exist
            assert err.status is RPCStatusCode.NOT_FOUND, err
            continue
        assert result.state.value == "cancelled", name
        # Cancelled through Temporal: the Web UI shows it Canceled, not Completed.
        assert (await recovery.describe()).status is WorkflowExecutionStatus.CANCELED, name
    await eventually(coordinator.status, lambda s: s["active_recoveries"] == 0)
    await coordinator.assert_still_recovers(service)


# ----- A4: a lookup that keeps failing ------------------------------------------------


@activity.defn(name="find_closed_runs")
async def lookup_that_always_fails(input: FindClosedRunsInput) -> list[ClosedRun]:
    raise RuntimeError("visibility is down")


async def test_a_lookup_failing_past_its_retries_leaves_queue_and_policies_intact(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    client = dev_env.client
    async with running_worker(client, store, task_queue):
        handle = await start_coordinator(client, task_queue, max_concurrent_recoveries=1)
        c = Coordinator(client, handle, task_queue, client.service_client.config.target_host)
        await c.update("configure", {"reconcile_interval_seconds": 1})
        await c.update(
            "set_recovery_policy",
            {"service_name": f"{service}-kept", "policy": {"max_retry_attempts": 3}},
        )
        await c.update("schedule_recovery", blocking(f"{service}-running"))
        await c.update("schedule_recovery", blocking(f"{service}-queued", priority=2))
        await eventually(c.status, lambda s: s["queued_recoveries"] == 1)
        await force_continue_as_new(c)
        before = await c.status()
    # The new run does not watch the running child: it must look it up, and cannot.
    breakers = CircuitBreakerActivities(store)
    checks = HealthCheckActivities(["tests.helpers.checks"])
    broken = Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=[
            breakers.set_breaker_state,
            breakers.list_breakers,
            checks.run_health_check,
            lookup_that_always_fails,
        ],
    )
    async with broken:
        events = await eventually(
            c.events,
            lambda e: "EVENT_TYPE_ACTIVITY_TASK_FAILED" in e,
            timeout=90,
            interval=1,
        )
        assert "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED" not in events
        description = await handle.describe()
        assert description.status is not None and description.status.name == "RUNNING"
        after = await c.status()
    before.pop("timestamp")
    after.pop("timestamp")
    assert after == before
    async with running_worker(client, store, task_queue):
        await c.assert_never_failed_a_task()
        await c.update("cancel_recovery", {"service_name": f"{service}-running"})
        await c.update("cancel_recovery", {"service_name": f"{service}-queued"})
        await c.assert_still_recovers(service)


# ----- A5: bounded state ----------------------------------------------------------------


async def test_the_queue_limit_refuses_more_and_says_so(coordinator: Coordinator, service: str) -> None:
    await coordinator.update("configure", {"max_concurrent_recoveries": 1, "queue_limit": 3})
    for i in range(3):
        await coordinator.update("schedule_recovery", blocking(f"{service}-{i}"))
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await coordinator.update("schedule_recovery", blocking(f"{service}-3"))
    assert "queue_limit is 3" in str(caught.value.cause)
    await coordinator.handle.signal("schedule_recovery", blocking(f"{service}-4"))
    info = await eventually(coordinator.configuration, lambda c: bool(c["rejected_signals"]))
    assert "queue_limit is 3" in info["rejected_signals"][-1]
    assert len((await coordinator.status())["services"]) == 3
    for i in range(25):
        await coordinator.handle.signal("schedule_recovery", args=[])
    info = await eventually(
        coordinator.configuration, lambda c: c["rejected_signals"][-1].endswith("got 0 inputs")
    )
    assert len(info["rejected_signals"]) == 20


def large_batch(service: str, count: int) -> ScheduleRecoveriesInput:
    """A valid batch of ``count`` recoveries whose checks carry 2 KB URLs."""
    url = "http://127.0.0.1:9/" + "p" * 2000
    return ScheduleRecoveriesInput(
        recoveries=[
            ScheduleRecoveryInput(
                service_name=f"{service}-{i}",
                policy=RecoveryPolicy(health_check=HttpHealthCheck(url=url)),
            )
            for i in range(count)
        ]
    )


async def test_a_request_too_large_to_refuse_safely_is_refused_before_it_is_sent(
    coordinator: Coordinator, service: str
) -> None:
    client = CoordinatorClient(
        coordinator.client, workflow_id=coordinator.handle.id, task_queue=coordinator.task_queue
    )
    before = len(await coordinator.events())
    with pytest.raises(RecoveryValidationError) as caught:
        await client.schedule_recoveries(large_batch(service, 600))
    assert "schedule_recoveries: the request is 1," in str(caught.value)
    assert "send fewer recoveries" in str(caught.value)
    assert len(await coordinator.events()) == before
    # Under the limit the same recoveries go in, in two calls.
    for half in (range(0, 300), range(300, 600)):
        batch = large_batch(service, 600)
        await client.schedule_recoveries(
            ScheduleRecoveriesInput(recoveries=[batch.recoveries[i] for i in half])
        )
    assert len((await coordinator.status())["services"]) == 600


@pytest.mark.timeout(120)
async def test_a_raw_update_over_2_mb_stalls_the_coordinator_for_a_while_and_loses_nothing(
    coordinator: Coordinator, service: str
) -> None:
    """What the facade's size limit prevents, sent raw: documented, nothing lost."""
    queued = f"{service}-queued"
    await coordinator.update("schedule_recovery", blocking(queued, priority=3))
    before = await eventually(
        coordinator.status, lambda s: s["services"][queued]["attempt_count"] == 1
    )
    padded = json.dumps({"service_name": service}).encode() + b" " * 2_500_000
    with pytest.raises((RPCError, WorkflowUpdateFailedError)):
        await asyncio.wait_for(
            coordinator.handle.execute_update(
                "schedule_recovery",
                args=[RawValue(Payload(metadata={"encoding": b"json/plain"}, data=padded))],
            ),
            timeout=60,
        )
    after = await eventually(coordinator.status, bool, timeout=60, interval=1)
    before.pop("timestamp")
    after.pop("timestamp")
    assert after == before
    # The SDK would not send the refusal (it echoes the request): those tasks failed.
    too_large = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_PAYLOADS_TOO_LARGE
    await coordinator.assert_still_recovers(service, BENIGN_CAUSES | {too_large})


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "request_body",
    [
        {"service_name": "ok", "x" * 1_050_000: 1},  # an unknown key a megabyte long
        {"service_name": "ok", "policy": {"health_check": {"kind": "k" * 1_050_000}}},
    ],
    ids=["long-key", "long-kind"],
)
async def test_a_raw_update_between_1_and_2_mb_is_refused_at_once_without_echoing_it(
    coordinator: Coordinator, request_body: dict[str, Any]
) -> None:
    """The refusal quotes a clipped name: with the request echoed it stays under 2 MB."""
    payload = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(request_body).encode())
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await asyncio.wait_for(
            coordinator.handle.execute_update("schedule_recovery", args=[RawValue(payload)]),
            timeout=10,
        )
    message = str(caught.value.cause)
    assert len(message) < 1000 and "…" in message, message[:300]
    await coordinator.update("configure", {"max_concurrent_recoveries": 2})  # no wait behind it
    await coordinator.assert_never_failed_a_task()


def _distinct_policies_batch(prefix: str, count: int) -> dict[str, Any]:
    """A batch whose every entry has a policy of its own (about 800 bytes each)."""
    return {
        "recoveries": [
            {
                "service_name": f"{prefix}-{index:04d}",
                "strategy": "manual",
                "policy": {"health_check": {"kind": "http", "url": f"http://{prefix}-{index}.example/" + "a" * 700}},
            }
            for index in range(count)
        ]
    }


@pytest.mark.timeout(120)
async def test_two_large_batches_in_one_workflow_task_are_not_both_let_past_the_budget(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str
) -> None:
    """Validators share one measure per task: what one accepts counts against the next."""
    client = dev_env.client
    async with running_worker(client, store, task_queue):
        handle = await start_coordinator(client, task_queue, max_concurrent_recoveries=2)
        c = Coordinator(client, handle, task_queue, client.service_client.config.target_host)
        await c.update("schedule_recoveries", _distinct_policies_batch("base", 200))
    # No worker: both batches wait for the same first workflow task of the next worker.
    batches = {f"b{k}": _distinct_policies_batch(f"b{k}", 800) for k in (1, 2)}
    sent = [
        asyncio.create_task(c.update("schedule_recoveries", batch, update_id=f"{task_queue}-{name}"))
        for name, batch in batches.items()
    ]
    await eventually(lambda: c.admitted(*(f"{task_queue}-{name}" for name in batches)), bool)
    async with running_worker(client, store, task_queue):
        outcomes = await asyncio.wait_for(asyncio.gather(*sent, return_exceptions=True), 60)
        refused = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(refused) == 1, outcomes
        assert "budget" in str(getattr(refused[0], "cause", refused[0]))
        await c.update("configure", {"max_concurrent_recoveries": 3})
        await c.assert_never_failed_a_task()


# ----- B8: concurrent executes of one MANUAL recovery ---------------------------------


async def test_concurrent_executes_of_a_manual_recovery_send_one_approval(
    coordinator: Coordinator, service: str
) -> None:
    await coordinator.update(
        "schedule_recovery", {"service_name": service, "strategy": "manual", "policy": {"max_retry_attempts": 3}}
    )
    await eventually(
        coordinator.status,
        lambda s: s["services"].get(service, {}).get("state") == "awaiting_manual",
    )
    results = await asyncio.gather(
        *(coordinator.update("execute_recovery", {"service_name": service, "operator": f"op{i}"}) for i in range(5))
    )
    assert {r["outcome"] for r in results} == {"approved"}
    assert {r["attempt_count"] for r in results} == {0}
    events = await coordinator.events()
    assert events.count("EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED") == 1
    status = await eventually(coordinator.status, lambda s: service not in s["services"])
    assert status["recent_history"][-1]["attempt_number"] == 1
    await coordinator.assert_never_failed_a_task()
    record_history(await coordinator.handle.fetch_history(), "coordinator_one_approval_per_wait")



async def test_a_state_too_large_to_hand_over_is_refused_and_the_hand_over_still_works(
    coordinator: Coordinator, service: str
) -> None:
    """Temporal carries at most 2 MB across continue-as-new: the coordinator never grows past it."""
    await coordinator.update("configure", {"max_concurrent_recoveries": 1})
    def long_check(index: int) -> dict[str, Any]:
        # Each policy its own (the hand-over writes equal ones once).
        return {"kind": "http", "url": f"http://127.0.0.1:9/{index}/" + "x" * 2000}

    def batch(start: int) -> dict[str, Any]:
        return {
            "recoveries": [
                {"service_name": f"{service}-{i:04d}", "priority": 5,
                 "policy": {**blocking_policy_json(), "health_check": long_check(i)}}
                for i in range(start, start + 400)
            ]
        }

    await coordinator.update("schedule_recoveries", batch(0))
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await coordinator.update("schedule_recoveries", batch(400))
    assert "budget" in str(caught.value.cause) and "continue-as-new" in str(caught.value.cause)
    before = await coordinator.status()
    await force_continue_as_new(coordinator)
    after = await coordinator.status()
    assert after["queued_recoveries"] == before["queued_recoveries"] == 399
    await coordinator.assert_never_failed_a_task()


async def test_huge_rejected_signals_never_stop_a_hand_over(
    coordinator: Coordinator, service: str
) -> None:
    """A bad signal's error names the bad key: a 100 KB key must not bloat the carried state."""
    for index in range(25):
        await coordinator.handle.signal(
            "schedule_recovery", {"service_name": "x", f"k{index}" + "y" * 100_000: 1}
        )
    info = await eventually(
        coordinator.configuration, lambda c: c["rejected_signals"][-1].count("k24") == 1
    )
    assert all(len(line) <= 500 for line in info["rejected_signals"])
    await force_continue_as_new(coordinator)
    await coordinator.assert_still_recovers(service)


async def test_execute_right_after_cancel_and_reschedule_waits_for_the_old_run_to_close(
    coordinator: Coordinator, service: str
) -> None:
    for round in range(6):
        name = f"{service}-{round}"
        await coordinator.update("schedule_recovery", blocking(name))
        await eventually(coordinator.status, lambda s: s["services"].get(name, {}).get("state") == "in_progress")
        await coordinator.update("cancel_recovery", {"service_name": name})
        queued = await coordinator.update("schedule_recovery", blocking(name))
        assert queued["outcome"] == "queued"
        # The old run may close, and the main loop start the new one, before this lands.
        executed = await coordinator.update("execute_recovery", {"service_name": name})
        assert executed["outcome"] in ("started", "already_running"), executed
        status = await coordinator.status()
        assert status["services"][name]["state"] == "in_progress", "the new run is not lost"
        assert [r["state"] for r in status["recent_history"] if r["service_name"] == name] == [
            "cancelled"
        ]
        await coordinator.update("cancel_recovery", {"service_name": name})
    await coordinator.assert_never_failed_a_task()
    record_history(await coordinator.handle.fetch_history(), "coordinator_execute_after_cancel")


async def test_execute_on_a_manual_recovery_whose_approved_attempt_runs_waits_for_that_attempt(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    from starter.client.orchestrator import RecoveryOrchestrator
    from tests.helpers.servers import health_server

    async with health_server(hang=True) as server, running_worker(dev_env.client, store, task_queue):
        orchestrator = RecoveryOrchestrator(
            client=dev_env.client, task_queue=task_queue, coordinator_workflow_id=f"coordinator-{task_queue}"
        )
        await orchestrator.start()
        slow = {"kind": "http", "url": server.url, "timeout_ms": 1500}
        await orchestrator.schedule_recovery(
            service, "manual", policy=RecoveryPolicy(max_retry_attempts=3, health_check=slow)
        )
        await orchestrator.approve_recovery(service, operator="alice")
        await eventually(
            orchestrator.get_recovery_status,
            lambda s: s["services"].get(service, {}).get("state") == "in_progress",
        )
        results = await asyncio.wait_for(
            asyncio.gather(*(orchestrator.execute_recovery(service) for _ in range(3))), timeout=30
        )
        assert {r.attempt_number for r in results} == {1}
        assert {r.state.value for r in results} == {"awaiting_manual"}
        await orchestrator.stop()


async def test_a_state_carried_from_before_the_bounds_is_taken_over_not_refused(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str
) -> None:
    """An older coordinator may carry a policy the new bounds would refuse at the door."""
    legacy = {"max_retry_attempts": 5000, "backoff_multiplier": 5000.0}
    async with running_worker(dev_env.client, store, task_queue):
        handle = await dev_env.client.start_workflow(
            COORDINATOR_WORKFLOW,
            {"state": {"policies": {"legacy": legacy}}},
            id=f"coordinator-{task_queue}",
            task_queue=task_queue,
        )
        c = Coordinator(dev_env.client, handle, task_queue, "")
        policy = await passing_refusals_resent(
            lambda: handle.query("get_recovery_policy", {"service_name": "legacy"})
        )
        assert policy["max_retry_attempts"] == 5000
        with pytest.raises(WorkflowUpdateFailedError, match="update failed"):
            await c.update("set_recovery_policy", {"service_name": "new", "policy": legacy})
        await force_continue_as_new(c)
        assert (await c.status())["services"]["legacy"]["max_attempts"] == 5000
        await c.assert_never_failed_a_task()


async def test_an_execute_waiting_for_a_closing_run_is_answered_when_its_entry_is_cancelled(
    dev_env: WorkflowEnvironment,
    store: SQLiteBreakerStore,
    task_queue: str,
    service: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It waited out its whole 30 s, then said the entry "stays queued"."""
    monkeypatch.setattr(
        worker, "WORKFLOWS", [NeverClosingRecovery if w is ServiceRecovery else w for w in WORKFLOWS]
    )
    client = dev_env.client
    async with running_worker(client, store, task_queue):
        handle = await start_coordinator(client, task_queue)
        coordinator = Coordinator(client, handle, task_queue, "")
        request = {"service_name": service, "strategy": "immediate"}
        await coordinator.update("schedule_recovery", request)
        await eventually(coordinator.status, lambda s: s["active_recoveries"] == 1 and not s["queued_recoveries"])
        await coordinator.update("cancel_recovery", {"service_name": service})
        await coordinator.update("schedule_recovery", request)
        timers = (await coordinator.events()).count("EVENT_TYPE_TIMER_STARTED")
        execute = asyncio.create_task(
            coordinator.update("execute_recovery", {"service_name": service})
        )
        # Its wait for the old run (which never closes) is a timer: it is waiting now.
        await eventually(
            coordinator.events, lambda events: events.count("EVENT_TYPE_TIMER_STARTED") > timers
        )
        await coordinator.update("cancel_recovery", {"service_name": service})
        began = asyncio.get_running_loop().time()
        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await execute
        waited = asyncio.get_running_loop().time() - began
        await coordinator.assert_never_failed_a_task()
    assert "No active recovery task" in str(caught.value.cause)
    assert waited < 10, f"the execute was answered {waited:.1f} s after its entry was cancelled"
