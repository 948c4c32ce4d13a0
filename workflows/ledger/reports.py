"""What children tell the coordinator, and how a run's end is recorded once.

A child reports its progress by signal, in order (``sequence``); its final report
carries its result. Reports may come late, twice, or from a run the coordinator
does not hold (a forged one names any run): those change nothing. A child this run
started is settled by its close too; one from before a continue-as-new is settled by
its final report, or when a lookup finds it closed.
"""

from __future__ import annotations

from workflows import dependencies
from workflows.carried_state import CoordinatorState
from workflows.ledger import history, operator_word, storm_guard
from workflows.ledger.lifecycle import ActiveRecovery, Lifecycle
from workflows.models import RecoveryPolicy, RecoveryReport, RecoveryResult, RecoveryState


def record(
    state: CoordinatorState,
    result: RecoveryResult,
    run_id: str | None,
    policy: RecoveryPolicy | None = None,
) -> None:
    """Add a finished recovery to the recent history, once per run.

    One that did not succeed ends the queued recoveries waiting for it too.

    Args:
        state: The carried state.
        result: How it ended.
        run_id: The run that ended (None: it never started).
        policy: The policy it ran under, which a later automatic try must keep.
    """
    if run_id is not None:
        if history.is_recorded(state, run_id):
            return
        history.note_finished_run(state, run_id)
        operator_word.note_ending(state, result, policy)
    history.append(state, result)
    if result.state in (RecoveryState.FAILED, RecoveryState.CANCELLED):
        for ended in end_dependents(state, result):
            history.append(state, ended)


def end_dependents(state: CoordinatorState, dependency: RecoveryResult) -> list[RecoveryResult]:
    """Take off the queue what waits, directly or not, for one that did not succeed."""
    waiting = dependencies.waiting_on(state.queue)
    if not waiting:
        return []
    taken: set[str] = set()
    ended = dependencies.cascade(dependency, waiting, taken)
    state.queue[:] = [t for t in state.queue if t.service_name not in taken]
    return ended


def started(state: CoordinatorState, active: ActiveRecovery, run_id: str) -> None:
    """Note the run id of a started child (a run cancelled before it started stays so)."""
    active.started(run_id)
    if active.cancel_reason is not None:
        history.note_finished_run(state, run_id)


def apply_report(
    state: CoordinatorState,
    report: RecoveryReport,
    *,
    watched: bool,
    trust_unknown_run: bool = False,
) -> None:
    """Apply a child's report, in order; a late, repeated or foreign one changes nothing.

    Args:
        state: The carried state.
        report: What the child said.
        watched: Whether this coordinator run sees the child's close (it started it).
        trust_unknown_run: Take the run id from the report while the child's start is
            in flight (replays from before ``automation-respects-operator`` only).
            Otherwise such a report is left unapplied: anyone can send one naming the
            service and any run, and a child this run started is settled by its close
            anyway.
    """
    active = state.active.get(report.service_name)
    known = (None, report.run_id) if trust_unknown_run else (report.run_id,)
    matches = active is not None and active.run_id in known
    if history.is_recorded(state, report.run_id):
        # Recorded already (cancelled, say). A child started before a continue-as-new
        # is not watched: its final report is how its slot comes free.
        if active is not None and matches and not active.live and report.result is not None:
            history.correct_late_cancel(state, active, report.result)
            _closing(state, active, watched)
        return
    if active is None or not matches:
        return  # not a run this coordinator holds: stale, or not one of its children
    if report.sequence <= active.last_report:
        return
    active.run_id = report.run_id
    if active.lifecycle is Lifecycle.STARTING:
        active.advance(Lifecycle.RUNNING)  # its run is known now
    active.last_report = report.sequence
    status = report.status
    task = active.task
    storm_guard.log_attempts(state, task, status.attempt_count - task.attempt_count, status.last_attempt_at)
    task.state = status.state
    task.attempt_count = status.attempt_count
    task.last_attempt_at = status.last_attempt_at
    task.next_attempt_at = status.next_attempt_at
    if active.approval_for_attempt is not None and status.attempt_count > active.approval_for_attempt:
        active.approval_for_attempt = None  # the approved attempt has begun
    if status.state is RecoveryState.AWAITING_MANUAL:
        active.operators_take_over()  # operators pace it now, not the queue
    if report.result is not None:
        record(state, report.result, run_id=report.run_id, policy=task.policy)
        _closing(state, active, watched)


def _closing(state: CoordinatorState, active: ActiveRecovery, watched: bool) -> None:
    """Its final report came: a watched child holds its slot until it has closed."""
    if watched:
        active.advance(Lifecycle.CLOSING)
    else:
        del state.active[active.task.service_name]


def settle(state: CoordinatorState, service_name: str, run_id: str, result: RecoveryResult) -> None:
    """Free the run's slot (if it still holds one) and record its result once.

    ``result`` is Temporal's own word on how the run closed (the child's close, or the
    lookup of closed runs): where a report said otherwise first, Temporal's word stands.
    Anyone who may signal the coordinator can forge a report, not a child's close: a
    forged "succeeded" must not outlive the real failure, nor skip its cool-down.
    """
    active = state.active.get(service_name)
    policy = None
    if active is not None and active.run_id == run_id:
        history.correct_late_cancel(state, active, result)
        policy = active.task.policy
        del state.active[service_name]
    if history.is_recorded(state, run_id) and history.replace_last(state, result):
        operator_word.note_ending(state, result, policy)
    record(state, result, run_id=run_id, policy=policy)


def unwatched(state: CoordinatorState, watched: set[str]) -> dict[str, str]:
    """Return run id → service of children whose close this run cannot see.

    Those are the ones started before a continue-as-new that are still running,
    or were cancelled and may not have closed yet.
    """
    return {
        active.run_id: name
        for name, active in state.active.items()
        if active.run_id is not None
        and active.run_id not in watched
        and (active.live or active.cancel_reason is not None)
    }


def forget_closing(state: CoordinatorState) -> list[str]:
    """At a new run: free the slots of children that have sent their final report.

    They were only waiting to close. One cancelled before it reported may still be
    running, so it stays until its final report or a lookup says it has closed.

    Returns:
        The services forgotten: a new run of one may find the old one not yet closed.
    """
    forgotten = [n for n, a in state.active.items() if a.lifecycle is Lifecycle.CLOSING]
    for name in forgotten:
        del state.active[name]
    return forgotten
