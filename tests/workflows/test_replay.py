"""Recorded histories replay against today's workflow code.

A change that would break running workflows (a step added, removed or reordered)
fails here. Re-record with ``RECORD_HISTORIES=1 make test`` only when the change
is deliberately incompatible and running workflows are versioned or drained.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

# The sandbox re-imports this module to run the fake workflow below: hand it the
# project's modules as they are (the worker's imports are not workflow code).
with workflow.unsafe.imports_passed_through():
    from tests.helpers.histories import HISTORIES, load_history
    from worker import WORKFLOW_INTERCEPTORS, WORKFLOW_RUNNER, WORKFLOWS
    from workflows.converter import data_converter, worker_data_converter

RECORDED = sorted(HISTORIES.glob("*.json"))


def test_histories_are_checked_in() -> None:
    names = {path.stem for path in RECORDED}
    assert {
        "service_recovery_exponential_failed",
        "service_recovery_manual",
        "service_recovery_refused_input",  # no input: failed by run, no task failure
        "service_recovery_foreign_id",  # refused: its id is not recovery-<service_name>
        "service_recovery_stale_approval",  # approve during a backoff ignored, then escalation
        "service_recovery_two_approvals",  # start + two approvals in one workflow task
        "service_recovery_hosted_check",  # the check on the host's own task queue
        "service_recovery_cancel_during_check",  # the breaker re-opened before ending cancelled
        "coordinator_priority_order",  # recorded before the start-all-free-slots patch
        "coordinator_priority_order_start_all_free_slots",
        "coordinator_continued_as_new",
        "coordinator_settles_unreported_run",
        "coordinator_shutdown_races",  # shutdown cancelling recoveries that end on their own
        "coordinator_one_approval_per_wait",  # five concurrent executes, one approve signal
        "coordinator_execute_after_cancel",  # start-in-batches; execute waits for a closing run
        "coordinator_depends_on",  # a dependent waits in the queue for its dependency
        # The long-lived watch (0.8): looks, a hand-over, pause/resume updates, continue-as-new.
        # 0.7's one-look runs (circuit_watch_schedules, _held_back) are gone: such a run lived
        # one look (at most 5 min), and an upgraded worker deletes their schedule and ends one
        # still in flight, so no 0.7 watch history is ever replayed by this code.
        "circuit_watch_long_lived",
        "service_recovery_ends_failed",  # Failed in Temporal, the result in the details
        "service_recovery_temporal_cancel_reopens",  # Canceled, the reset breaker re-opened
        "coordinator_cancel_through_temporal",  # the coordinator requests Temporal cancellation
        # ServiceRecovery runs pinned to the build that started it, so its histories are
        # recorded by today's code (none holds a patch marker). One exception: 0.8's runs were
        # unversioned, and move onto 0.9 when it becomes current (docs/versioning.md); they
        # hold the 0.7 bundle marker and took every branch it named, which is all 0.9 has.
        # Histories of runs started before 0.7 are gone: 0.9 takes over from 0.8 only.
        "service_recovery_started_on_0_8",
    } <= names


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
async def test_recorded_history_replays(path: Path) -> None:
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=worker_data_converter,
        workflow_runner=WORKFLOW_RUNNER,
        interceptors=WORKFLOW_INTERCEPTORS,  # as the worker runs them (workflows/guard.py)
    )
    await replayer.replay_workflow(load_history(path))


@workflow.defn(name="ServiceRecovery")
class StartsWithATimer:
    """A 'changed' ServiceRecovery: its first command is a timer, not the search-attribute upsert.

    It runs normally (no error of its own), so only the replay's comparison of
    commands with recorded events can stop it.
    """

    @workflow.run
    async def run(self, *args: Any) -> None:
        await workflow.sleep(timedelta(seconds=1))


async def test_a_changed_workflow_fails_replay() -> None:
    """The replay check bites: a workflow that issues a different first command is caught."""
    replayer = Replayer(workflows=[StartsWithATimer], data_converter=data_converter)
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(load_history(HISTORIES / "service_recovery_http_success.json"))
