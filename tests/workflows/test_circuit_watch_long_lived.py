"""The long-lived circuit watch the worker keeps: one row, its own pause, why for each breaker.

Real dev server, real worker, real SQLite store; the watch looks every second.
"""

from __future__ import annotations

from collections import Counter

from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
    ScheduleState,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from recovery_breakers.store import BreakerState
from starter.client.orchestrator import RecoveryOrchestrator
from starter.client.watch_control import (
    ensure_watch,
    latest_look,
    look_now,
    set_watch_paused,
)
from tests.helpers.histories import record_history
from tests.helpers.policies import blocking_policy
from tests.helpers.waiting import eventually
from tests.helpers.watching import long_lived_watch, watch_id, watch_runs, watch_until
from tests.helpers.workers import running_worker
from workflows.circuit_watch_models import (
    CircuitWatchInput,
    ServiceSettings,
    WatchInput,
)
from workflows.errors import RecoveryValidationError

pytestmark = pytest.mark.timeout(90)


async def current_details(client: Any, workflow_id: str) -> str:
    """The watch's current details, read as the Web UI does."""
    metadata = await client.get_workflow_handle(workflow_id).query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    return str(metadata.current_details)


async def test_the_watch_hands_an_open_breaker_over_and_a_pause_holds_until_resumed(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, store: SQLiteBreakerStore,
    task_queue: str, service: str,
) -> None:
    client = dev_env.client
    first, second = f"{service}-a", f"{service}-b"
    defaults = ServiceSettings(policy=blocking_policy())
    async with long_lived_watch(client, orchestrator, task_queue, defaults=defaults) as started:
        wid = started.workflow_id
        store.set_state(first, BreakerState.OPEN)
        status = await eventually(
            lambda: orchestrator.get_recovery_status(max_staleness=0), lambda s: first in s["services"], timeout=20
        )
        assert status["services"][first]["strategy"] == "exponential_backoff"
        state = await watch_until(
            client, wid, lambda s: s.last_look is not None and first in s.last_look.open_breakers
            and s.last_look.verdict(first) != "handed over"
        )
        assert state.last_look is not None and "already" in (state.last_look.verdict(first) or "")

        paused = await set_watch_paused(client, True, "db failover", workflow_id=wid)
        assert paused.paused and paused.note == "db failover"
        store.set_state(second, BreakerState.OPEN)
        # Two whole looks after the pause have seen it open; neither handed it over.
        seen = await watch_until(
            client, wid,
            lambda s: s.last_look is not None and second in s.last_look.open_breakers
            and s.looks >= paused.looks + 2,
        )
        assert seen.last_look is not None and seen.last_look.paused
        assert seen.last_look.verdict(second) == "not handed over: the watch is paused"
        assert second not in (await orchestrator.get_recovery_status(max_staleness=0))["services"]
        details = await current_details(client, wid)
        assert "**PAUSED**" in details and "db failover" in details
        assert f"`{second}`: not handed over: the watch is paused" in details

        resumed = await set_watch_paused(client, False, "failover done", workflow_id=wid)
        assert not resumed.paused and resumed.note == "failover done"
        look = await look_now(client, workflow_id=wid)
        assert look.looked_at is not None and not look.paused
        await eventually(lambda: orchestrator.get_recovery_status(max_staleness=0), lambda s: second in s["services"])
        details = await current_details(client, wid)
        assert "watching" in details and f"`{first}`: " in details
        assert (await latest_look(client, workflow_id=wid)) is not None
        assert await watch_runs(client, wid) == [WorkflowExecutionStatus.RUNNING]


async def test_fifteen_looks_at_1s_add_one_row_and_few_events(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, store: SQLiteBreakerStore,
    task_queue: str, service: str,
) -> None:
    client = dev_env.client
    store.set_state(service, BreakerState.OPEN)  # in hand all along: every look hands it over
    defaults = ServiceSettings(policy=blocking_policy())
    async with long_lived_watch(client, orchestrator, task_queue, defaults=defaults) as started:
        wid = started.workflow_id
        state = await watch_until(client, wid, lambda s: s.looks >= 15, timeout=40)
        rows = [
            r async for r in client.list_workflows(
                f"WorkflowId STARTS_WITH '{wid}' AND WorkflowType = 'CircuitWatch'"
            )
        ]
        assert len(rows) <= 2
        history = await client.get_workflow_handle(wid).fetch_history()
    assert state.last_look is not None and state.last_look.open_breakers == [service]
    # A look that hands over: timer started and fired, workflow task scheduled, started and
    # completed, the listing's and the hand-over's markers: 7 events (an idle look 6), plus
    # the start and the worker's configure update once.
    # Looks counted in the same history (one timer each), not from the earlier status read:
    # on a loaded machine more looks happen before the history is fetched.
    looks = sum(1 for e in history.events if e.HasField("timer_started_event_attributes"))
    # Once: the start and its workflow task (4), the configure update with its task (5), and
    # room for one workflow task split in two by a loaded machine (completed, scheduled,
    # started: 3; one event of room failed a fresh clone's run with 116 for 115).
    once = 4 + 5 + 3
    kinds = Counter(EventType.Name(e.event_type) for e in history.events)
    assert len(history.events) <= 7 * looks + once, f"{len(history.events)} events in {looks} looks: {kinds}"


async def test_a_failing_store_never_ends_the_watch(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, store: SQLiteBreakerStore,
    task_queue: str, service: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = dev_env.client
    store.set_state(service, BreakerState.OPEN)

    def down() -> dict[str, Any]:
        raise ConnectionError("store down for the test")

    monkeypatch.setattr(store, "get_all_states", down)
    async with long_lived_watch(
        client, orchestrator, task_queue, defaults=ServiceSettings(policy=blocking_policy())
    ) as started:
        wid = started.workflow_id
        failed = await watch_until(
            client, wid, lambda s: s.last_look is not None and s.last_look.error is not None
        )
        assert failed.last_look is not None and "store down for the test" in (failed.last_look.error or "")
        assert "could not list the breakers" in await current_details(client, wid)
        monkeypatch.undo()
        await eventually(lambda: orchestrator.get_recovery_status(max_staleness=0), lambda s: service in s["services"], timeout=30)
        assert await watch_runs(client, wid) == [WorkflowExecutionStatus.RUNNING]


async def test_a_worker_restart_keeps_the_one_watch_and_its_pause_and_replaces_a_07_schedule(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, store: SQLiteBreakerStore,
    task_queue: str,
) -> None:
    client = dev_env.client
    wid = watch_id(task_queue)
    schedule_id = f"schedule-{wid}"
    watch_queue = f"{task_queue}-watch"
    settings = WatchInput(coordinator_workflow_id=orchestrator.coordinator_workflow_id)
    # 0.7 left a paused schedule behind.
    await client.create_schedule(
        schedule_id,
        Schedule(
            action=ScheduleActionStartWorkflow(
                "CircuitWatch", settings, id=wid, task_queue=watch_queue,
                execution_timeout=timedelta(minutes=5),
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=10))]),
            state=ScheduleState(paused=True, note="maintenance"),
        ),
    )
    try:
        async with running_worker(client, store, watch_queue):
            first = await ensure_watch(
                client, settings, interval=timedelta(seconds=1), task_queue=watch_queue,
                workflow_id=wid, schedule_id=schedule_id,
            )
            assert first.paused and first.note == "paused in the 0.7 schedule: maintenance"
            assert first.notes == [f"replaced the 0.7 schedule {schedule_id!r} (paused)"]
            with pytest.raises(RPCError):
                await client.get_schedule_handle(schedule_id).describe()
            await watch_until(client, wid, lambda s: s.looks >= 1)
        # Another worker (a restart) with another interval: the same watch, still paused.
        async with running_worker(client, store, watch_queue):
            again = await ensure_watch(
                client, settings, interval=timedelta(seconds=2), task_queue=watch_queue,
                workflow_id=wid, schedule_id=schedule_id,
            )
            assert again.paused and again.note == first.note and again.interval_seconds == 2
            assert again.notes == []
            state = await watch_until(client, wid, lambda s: s.looks >= again.looks + 1)
            assert state.paused and state.paused_since == first.paused_since
            assert await watch_runs(client, wid) == [WorkflowExecutionStatus.RUNNING]
            await client.get_workflow_handle(wid).terminate(reason="test over")
    finally:
        try:
            await client.get_schedule_handle(schedule_id).delete()
        except RPCError:
            pass


async def test_continue_as_new_carries_the_pause_the_settings_and_the_last_look(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, store: SQLiteBreakerStore,
    task_queue: str, service: str,
) -> None:
    """Also records ``circuit_watch_long_lived`` (a run from start to continue-as-new)."""
    client = dev_env.client
    wid = watch_id(task_queue)
    store.set_state(service, BreakerState.OPEN)
    settings = WatchInput(
        coordinator_workflow_id=orchestrator.coordinator_workflow_id,
        defaults=ServiceSettings(policy=blocking_policy()),
        source="/etc/recovery.toml",
    )
    handle = await client.start_workflow(
        "CircuitWatch",
        CircuitWatchInput(settings=settings, interval_seconds=1, continue_as_new_after_events=60),
        id=wid,
        task_queue=task_queue,
    )
    try:
        first_run = handle.result_run_id
        await eventually(lambda: orchestrator.get_recovery_status(max_staleness=0), lambda s: service in s["services"])
        await set_watch_paused(client, True, "carried over", workflow_id=wid)
        await set_watch_paused(client, False, "resumed before", workflow_id=wid)
        await set_watch_paused(client, True, "carried over", workflow_id=wid)
        state = await watch_until(
            client, wid, lambda s: len(s.recent_runs) > 0, timeout=5
        )
        looks_before = state.looks
        await eventually(
            lambda: watch_runs(client, wid), lambda runs: len(runs) >= 2, timeout=40
        )
        after = await watch_until(client, wid, lambda s: s.looks > looks_before)
        assert after.paused and after.note == "carried over"
        assert after.settings.source == "/etc/recovery.toml"
        assert after.last_look is not None and service in after.last_look.open_breakers
        old = client.get_workflow_handle(wid, run_id=first_run)
        assert (await old.describe()).status is WorkflowExecutionStatus.CONTINUED_AS_NEW
        record_history(await old.fetch_history(), "circuit_watch_long_lived")
    finally:
        await client.get_workflow_handle(wid).terminate(reason="test over")


async def test_the_look_says_paused_services_and_breakers_without_a_health_check(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, store: SQLiteBreakerStore,
    task_queue: str, service: str,
) -> None:
    client = dev_env.client
    held, unchecked = f"{service}-held", f"{service}-unchecked"
    await orchestrator.pause_service(held, duration=3600, reason="db migration")
    store.set_state(held, BreakerState.OPEN)
    store.set_state(unchecked, BreakerState.OPEN)
    services = {held: ServiceSettings(policy=blocking_policy())}  # `unchecked`: the defaults, no check
    async with long_lived_watch(client, orchestrator, task_queue, services=services) as started:
        state = await watch_until(
            client, started.workflow_id,
            lambda s: s.last_look is not None and {held, unchecked} <= set(s.last_look.open_breakers),
        )
    look = state.last_look
    assert look is not None
    assert look.skipped[held].startswith("paused until ") and "db migration" in look.skipped[held]
    assert held not in look.no_health_check
    assert unchecked in look.no_health_check
    assert (look.verdict(unchecked) or "").endswith("(no health check)")


async def test_bad_updates_are_refused_and_the_watch_goes_on(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, task_queue: str,
) -> None:
    client = dev_env.client
    async with long_lived_watch(client, orchestrator, task_queue) as started:
        wid = started.workflow_id
        with pytest.raises(RecoveryValidationError, match="note"):
            await set_watch_paused(client, True, "x" * 501, workflow_id=wid)
        handle = client.get_workflow_handle(wid)
        for name, request in (
            ("configure_watch", {"interval_seconds": 0.5}),
            ("configure_watch", {"interval_seconds": True}),
            ("pause", {"note": 5}),
            ("resume", [1, 2]),
            ("look_now", {"now": True}),
        ):
            with pytest.raises(WorkflowUpdateFailedError):
                await handle.execute_update(name, request)
        state = await watch_until(client, wid, lambda s: s.looks >= started.looks + 1)
        assert not state.paused and state.interval_seconds == 1
        assert await watch_runs(client, wid) == [WorkflowExecutionStatus.RUNNING]
