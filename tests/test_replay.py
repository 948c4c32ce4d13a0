"""Recorded histories replay against today's workflow code.

A change that would break running workflows (a step added, removed or reordered)
fails here. Re-record with ``RECORD_HISTORIES=1 make test`` only when the change
is deliberately incompatible and running workflows are versioned or drained.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from tests.conftest import HISTORIES
from worker import WORKFLOWS
from workflows.converter import data_converter
from workflows.models import RecoveryResult, ServiceRecoveryInput

RECORDED = sorted(HISTORIES.glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    """Load a checked-in history (its workflow id is the file name)."""
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_histories_are_checked_in() -> None:
    names = {path.stem for path in RECORDED}
    assert {
        "service_recovery_exponential_failed",
        "service_recovery_manual",
        "coordinator_priority_order",  # recorded before the start-all-free-slots patch
        "coordinator_priority_order_start_all_free_slots",
        "coordinator_continued_as_new",
        "coordinator_settles_unreported_run",
    } <= names


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
async def test_recorded_history_replays(path: Path) -> None:
    replayer = Replayer(workflows=WORKFLOWS, data_converter=data_converter)
    await replayer.replay_workflow(load(path))


@workflow.defn(name="ServiceRecovery")
class SkipsEveryStep:
    """A 'changed' ServiceRecovery that no longer runs any activity."""

    @workflow.run
    async def run(self, input: ServiceRecoveryInput) -> RecoveryResult:
        raise RuntimeError("unreachable: replay must fail before this completes")


async def test_a_changed_workflow_fails_replay() -> None:
    """The replay check bites: a workflow that drops its steps is caught."""
    replayer = Replayer(workflows=[SkipsEveryStep], data_converter=data_converter)
    with pytest.raises((NondeterminismError, RuntimeError)):
        await replayer.replay_workflow(load(HISTORIES / "service_recovery_http_success.json"))
