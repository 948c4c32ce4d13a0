"""The recovery metrics: every name and label in one place (a dashboard reads these).

Emitted through the SDK's workflow metric meter, so they leave through the worker's
own telemetry (``recovery-worker --metrics-bind``, Prometheus) beside the SDK's
metrics, each with the SDK's labels (``namespace``, ``task_queue``,
``workflow_type``) plus ours. The SDK emits nothing while a workflow replays, so a
worker restart does not count a recovery twice.

| metric | kind | labels |
| --- | --- | --- |
| ``recovery_started`` | counter | ``strategy`` |
| ``recovery_ended`` | counter | ``strategy``, ``outcome`` (succeeded, failed, cancelled) |
| ``recovery_attempts`` | counter | ``strategy``, ``result`` (success, failure) |
| ``recovery_backoff_seconds`` | histogram | ``strategy`` (time waited, workflow clock) |


The gauge of recoveries awaiting an operator is the worker's, not a workflow's (a
workflow's gauge would vanish with the worker that last replayed it): see
``starter.client.fleet_metrics``.
"""

from __future__ import annotations

from temporalio import workflow

STARTED = "recovery_started"
ENDED = "recovery_ended"
ATTEMPTS = "recovery_attempts"
BACKOFF_SECONDS = "recovery_backoff_seconds"


def recovery_started(strategy: str) -> None:
    """Count a recovery that began its first attempt or wait."""
    workflow.metric_meter().create_counter(STARTED, "recoveries started").add(
        1, {"strategy": strategy}
    )


def recovery_ended(strategy: str, outcome: str) -> None:
    """Count a recovery's ending: succeeded, failed or cancelled."""
    workflow.metric_meter().create_counter(ENDED, "recoveries ended, by outcome").add(
        1, {"strategy": strategy, "outcome": outcome}
    )


def attempt_made(strategy: str, succeeded: bool) -> None:
    """Count one finished attempt."""
    workflow.metric_meter().create_counter(ATTEMPTS, "recovery attempts").add(
        1, {"strategy": strategy, "result": "success" if succeeded else "failure"}
    )


def backoff_waited(strategy: str, seconds: float) -> None:
    """Record how long a backoff really lasted (a cancel cuts one short), not its plan."""
    workflow.metric_meter().create_histogram_float(
        BACKOFF_SECONDS, "time waited in a backoff before an attempt", "s"
    ).record(seconds, {"strategy": strategy})
