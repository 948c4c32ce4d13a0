"""What the kill and outage tests assert of one recovery: each attempt once, each on time.

Both checks return a list of problems (empty: all is well), so that a failing test
names every recovery and step that went wrong at once, with the server's timings.

"On time" is measured between server timestamps: a step is due when what comes
before it was recorded (the timer fired, the reset was recorded, the check finished),
or, when no worker was up at that moment, when the next worker was ready. A step
that was in flight when its worker died is *lost*: the product notices a lost breaker
write when the workflow task it ran in times out, and a lost health check when its
heartbeats stop; each bound is asserted where it applies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from temporalio.client import Client

from starter.client.recoveries import final_result
from tests.reliability.kills_cluster import Outage
from tests.reliability.kills_history import Attempt, Timeline, describe, read_timeline, seconds
from workflows.constants import recovery_workflow_id
from workflows.models import AttemptRecord, RecoveryResult
from workflows.recovery_checks import HEALTH_CHECK_HEARTBEAT, HEALTH_CHECK_RETRY
from workflows.service_recovery import ServiceRecovery

# How late a step may be recorded after it was due (a busy 2-core machine included).
ON_TIME_S = 2.0
# A timeout the server fires may come this much after its nominal time.
TIMEOUT_SLACK_S = 1.5

Lost = Literal["reset", "check", "end"]


@dataclass
class Verdict:
    """A finished recovery as the server recorded it, and what is wrong with it."""

    timeline: Timeline
    result: RecoveryResult
    records: list[AttemptRecord]  # the ``history`` query's answer
    problems: list[str]


async def examine(
    client: Client,
    service: str,
    outage: Outage | None = None,
    lost: Mapping[int, Lost] | None = None,
    *,
    timed: bool = True,
) -> Verdict:
    """Wait for the service's recovery to end; check each attempt once and (if ``timed``) on time.

    Args:
        client: A client of the server.
        service: The service (its recovery is ``recovery-<service>``, the current run).
        outage: What the recovery lived through; ``lost``: see ``late_steps``.
        timed: False to check only that nothing is doubled or missing.
    """
    handle = client.get_workflow_handle(recovery_workflow_id(service), result_type=RecoveryResult)
    result = await final_result(handle)  # a Failed recovery's result is in its failure
    timeline = await read_timeline(handle)
    records = await handle.query(ServiceRecovery.history)
    print(f"{service}:\n{describe(timeline)}")
    problems = once_each(timeline, result, records)
    if timed:
        problems += late_steps(timeline, outage, lost)
    return Verdict(timeline, result, records, [f"{service}: {p}" for p in problems])


def expected_breaker_states(attempts: int, succeeded: bool) -> list[str]:
    """Return the breaker writes a recovery of ``attempts`` attempts records, in order."""
    last = "closed" if succeeded else "open"
    return ["half-open", "open"] * (attempts - 1) + ["half-open", last]


def once_each(
    timeline: Timeline, result: RecoveryResult, records: Sequence[AttemptRecord]
) -> list[str]:
    """Return what is doubled or missing: attempts, breaker writes, checks, timers."""
    n = result.attempt_number
    problems = []
    if len(timeline.attempts) != n or len(records) != n:
        problems.append(
            f"{n} attempts in the result, {len(timeline.attempts)} in the workflow history, "
            f"{len(records)} in the history query"
        )
    states = expected_breaker_states(n, result.success)
    if timeline.breaker_states != states:
        problems.append(f"breaker writes recorded {timeline.breaker_states}, expected {states}")
    if timeline.checks_scheduled != n:
        problems.append(f"{timeline.checks_scheduled} health checks scheduled for {n} attempts")
    numbers = [s.split(" ")[3] for s in timeline.timer_summaries]
    if numbers != [str(k) for k in range(2, n + 1)]:
        problems.append(f"backoff timers {timeline.timer_summaries} for {n} attempts")
    if [r.attempt for r in records] != list(range(1, n + 1)):
        problems.append(f"the history query numbers its attempts {[r.attempt for r in records]}")
    unchecked = [r.attempt for r in records if r.health_check is None]
    if unchecked:
        problems.append(f"attempts {unchecked} have no health check outcome in the history query")
    return problems


def late_steps(
    timeline: Timeline, outage: Outage | None = None, lost: Mapping[int, Lost] | None = None
) -> list[str]:
    """Return every step recorded later than it was due (see the module docstring).

    Args:
        timeline: The recovery's history.
        outage: The worker kill the recovery lived through, if any.
        lost: By attempt number, the step that was in flight when the worker died.
    """
    lost = lost or {}
    problems: list[str] = []
    for attempt in timeline.attempts:
        problems += _attempt_late(timeline, attempt, outage, lost.get(attempt.number))
    return problems


def _attempt_late(
    timeline: Timeline, attempt: Attempt, outage: Outage | None, lost: Lost | None
) -> list[str]:
    name = f"attempt {attempt.number}"
    problems = []
    reset_due = _due(attempt.due_at, outage)
    if lost == "reset":
        problems += _redone_after_task_timeout(timeline, f"{name}'s reset", attempt.reset.at, outage)
    elif (late := seconds(attempt.reset.at, reset_due)) > ON_TIME_S:
        problems.append(
            f"{name} reset its breaker {late:.1f}s after it was due at {attempt.due_at:%H:%M:%S.%f} "
            f"({attempt.timer_summary or 'the workflow start'})"
        )
    check = attempt.check
    if check is None or check.started_at is None or check.finished_at is None:
        return problems + [f"{name} has no complete health check"]
    if lost == "check":
        problems += _retried_after_heartbeat(name, check.started_at, check.tries, check.retried_after, outage)
    elif check.tries != 1:
        problems.append(f"{name}'s check ran {check.tries} times ({check.retried_after})")
    elif (late := seconds(check.started_at, _due(check.scheduled_at, outage))) > ON_TIME_S:
        problems.append(f"{name}'s check started {late:.1f}s after it was scheduled")
    if attempt.end is None:
        return problems + [f"{name} never closed or re-opened its breaker"]
    if lost == "end":
        problems += _redone_after_task_timeout(timeline, f"{name}'s {attempt.end.state}", attempt.end.at, outage)
    elif (late := seconds(attempt.end.at, _due(check.finished_at, outage))) > ON_TIME_S:
        problems.append(
            f"{name} wrote its breaker {attempt.end.state} {late:.1f}s after its check finished "
            f"at {check.finished_at:%H:%M:%S.%f}"
        )
    return problems


def _due(when: datetime, outage: Outage | None) -> datetime:
    return outage.due(when) if outage is not None else when


def _redone_after_task_timeout(
    timeline: Timeline, step: str, recorded_at: datetime, outage: Outage | None
) -> list[str]:
    """A breaker write lost with its worker: redone once its workflow task timed out."""
    assert outage is not None, "a lost step needs the outage that lost it"
    timeouts = [at for at, kind in timeline.task_timeouts if at >= outage.down_at]
    if not timeouts:
        return [f"{step} was lost with the worker, yet no workflow task timed out"]
    noticed = seconds(timeouts[0], outage.down_at)
    problems = []
    if noticed > timeline.task_timeout_s + TIMEOUT_SLACK_S:
        problems.append(f"{step}: the dead worker's task timed out {noticed:.1f}s after the kill")
    if (late := seconds(recorded_at, outage.due(timeouts[0]))) > ON_TIME_S:
        problems.append(f"{step} was redone {late:.1f}s after the dead worker's task timed out")
    return problems


def _retried_after_heartbeat(
    name: str, started_at: datetime, tries: int, cause: str | None, outage: Outage | None
) -> list[str]:
    """A check lost with its worker: retried once its heartbeats stopped, not at its timeout."""
    assert outage is not None, "a lost step needs the outage that lost it"
    if tries < 2 or cause != "HEARTBEAT":
        return [f"{name}'s check, lost with its worker, ran {tries} time(s), retried after {cause}"]
    # Noticed when its heartbeats stop; retried after the retry policy's first interval,
    # as soon as a worker is there to take it.
    noticed_by = outage.down_at + HEALTH_CHECK_HEARTBEAT + HEALTH_CHECK_RETRY.initial_interval
    if (late := seconds(started_at, max(noticed_by, outage.back_at))) > ON_TIME_S + TIMEOUT_SLACK_S:
        return [
            f"{name}'s check was retried {seconds(started_at, outage.down_at):.1f}s after the kill "
            f"({late:.1f}s late; heartbeat timeout {HEALTH_CHECK_HEARTBEAT.total_seconds():g}s, next "
            f"worker ready {seconds(outage.back_at, outage.down_at):.1f}s after the kill)"
        ]
    return []
