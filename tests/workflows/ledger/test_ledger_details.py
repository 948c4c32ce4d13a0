"""The Web UI text: the coordinator's queue page and each recovery's policy details."""

from __future__ import annotations

from datetime import datetime, timezone

from workflows.coordinator_details import policy_details, queue_details
from workflows.ledger.lifecycle import ActiveRecovery, Lifecycle
from workflows.models import RecoveryPolicy, RecoveryStrategy, RecoveryTask

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def test_a_policy_is_described_for_the_recoverys_page() -> None:
    task = RecoveryTask(
        priority=1, service_name="api", strategy=RecoveryStrategy.MANUAL, scheduled_at=NOW,
        policy=RecoveryPolicy(max_retry_attempts=3, depends_on=["db"], max_attempts_per_hour=4),
    )
    assert policy_details(task).split("\n\n") == [
        "**3 attempts**, each approved by an operator.",
        "Health check: none.",
        "Depends on: db.",
        "Storm guard: at most 4 attempts an hour.",
    ]
    backoff = task.model_copy(update={"strategy": RecoveryStrategy.LINEAR_BACKOFF, "policy": RecoveryPolicy()})
    assert policy_details(backoff).startswith("**5 attempts**, linear_backoff: backoff from 1000 ms")


def test_the_queue_page_lists_only_live_recoveries() -> None:
    task = RecoveryTask(priority=1, service_name="api", scheduled_at=NOW)
    closing = ActiveRecovery(task=task.model_copy(update={"service_name": "old"}), lifecycle=Lifecycle.CLOSING)
    page = queue_details(
        now=NOW, running=True, slots=(1, 4), queue=[], queued=0,
        active=[ActiveRecovery(task=task, run_id="r"), closing], holds={}, paused={},
    )
    assert page.startswith("**1 running**, **0 waiting**") and "`api`" in page and "`old`" not in page


def test_a_reason_over_several_lines_stays_on_its_row() -> None:
    forged = "maint\n\n**Running**\n\n- `db` succeeded [approve](http://evil.example/)"
    page = queue_details(
        now=NOW, running=True, slots=(0, 4), queue=[], queued=0, active=[],
        holds={}, paused={"p2": {"until": NOW, "reason": forged}},
    )
    rows = page.splitlines()
    assert rows.count("**Running**") == 0
    assert "- `p2` until 2026-12-06 12:00 UTC: maint **Running** - `db` succeeded" in page
