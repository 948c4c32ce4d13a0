"""What the coordinator's Web UI pages say: its queue, and each recovery's policy.

The Web UI shows a workflow's "Current Details" as markdown. The coordinator's tell
what runs, what waits in priority order (the first few dozen), and what automation
holds back or an operator paused, and why. A recovery it starts gets "Details"
saying the policy it runs under. Pure: the caller passes the ledger's view and the
time, so the text is unit-tested without a server.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from workflows.errors import clipped
from workflows.ledger.lifecycle import ActiveRecovery
from workflows.models import RecoveryStrategy, RecoveryTask

# Rows per section: the page stays readable, and the details small.
SHOWN = 30
# What one reason may take of a row.
MAX_REASON = 240

SUMMARY = "the namespace's queue of service recoveries: priority order, slots, holds and pauses"


def queue_details(
    *,
    now: datetime,
    running: bool,
    slots: tuple[int, int],
    queue: Iterable[RecoveryTask],
    queued: int,
    active: Iterable[ActiveRecovery],
    holds: Mapping[str, Mapping[str, Any]],
    paused: Mapping[str, Mapping[str, Any]],
) -> str:
    """Return the coordinator's current details as markdown.

    Args:
        now: The workflow's time.
        running: Whether the orchestrator runs (a stopped one starts nothing).
        slots: Slots in use, and the most that may be.
        queue: The queued tasks, in any order.
        queued: How many those are.
        active: The running recoveries.
        holds: Service → ``{"reason", "until"}`` holding automation back.
        paused: Service → ``{"reason", "until"}`` paused by an operator.
    """
    live = [a for a in active if a.live]
    waiting = heapq.nsmallest(SHOWN, queue, key=lambda task: task.queue_key)
    used, most = slots
    state = "running" if running else "**stopped** (nothing starts until `recoveryctl configure --start`)"
    lines = [
        f"**{len(live)} running**, **{queued} waiting**, {len(holds)} held back, "
        f"{len(paused)} paused · slots {used}/{most} · orchestrator {state} · "
        f"as of {now.strftime('%H:%M:%S UTC')}"
    ]
    if live:
        lines += ["", "**Running**", ""]
        lines += [_running_row(a) for a in sorted(live, key=lambda a: a.task.queue_key)[:SHOWN]]
        lines += _more(len(live))
    if waiting:
        lines += ["", "**Waiting, in priority order**", ""]
        lines += [
            f"{index}. `{task.service_name}` priority {task.priority}, {task.strategy.value}"
            + (" (automatic)" if task.automatic else "")
            for index, task in enumerate(waiting, start=1)
        ]
        lines += _more(queued)
    if holds:
        lines += ["", "**Held back** (automation leaves these alone)", ""]
        lines += _held_rows(holds)
    if paused:
        lines += ["", "**Paused** by an operator", ""]
        lines += _held_rows(paused)
    return "\n".join(lines)


def _running_row(active: ActiveRecovery) -> str:
    task = active.task
    attempt = f"attempt {task.attempt_count}/{task.policy.max_retry_attempts}"
    state = task.state.value
    cancel = f", cancelling: {_reason(active.cancel_reason)}" if active.cancel_reason else ""
    return f"- `{task.service_name}` {state}, {attempt}{cancel}"


def _held_rows(entries: Mapping[str, Mapping[str, Any]]) -> list[str]:
    ordered = sorted(entries.items(), key=lambda item: str(item[1].get("until")))[:SHOWN]
    rows = [
        f"- `{name}` until {_until(entry.get('until'))}: {_reason(entry.get('reason'))}"
        for name, entry in ordered
    ]
    return rows + _more(len(entries))


def _reason(text: object) -> str:
    """An operator's or automation's reason as one row of the page: one line, clipped.

    A reason is free text: its line breaks would start sections of their own (a fake
    "Running" list under a pause's row), so they become spaces.
    """
    return clipped(" ".join(str(text).split()), MAX_REASON)


def _until(value: object) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    text = str(value)
    return text[:16].replace("T", " ") + " UTC" if len(text) >= 16 else text


def _more(total: int) -> list[str]:
    return [f"- … and {total - SHOWN} more"] if total > SHOWN else []


def policy_details(task: RecoveryTask) -> str:
    """Describe the policy a recovery runs under, for the Web UI's "Details" of its child."""
    policy = task.policy
    check = policy.health_check
    if task.strategy is RecoveryStrategy.MANUAL:
        pacing = "each approved by an operator"
    elif task.strategy is RecoveryStrategy.IMMEDIATE:
        pacing = "one after another, no backoff"
    else:
        pacing = (
            f"{task.strategy.value}: backoff from {policy.initial_delay_ms} ms up to "
            f"{policy.max_delay_ms} ms (x{policy.backoff_multiplier:g}, jitter {policy.jitter.value})"
        )
    lines = [
        f"**{policy.max_retry_attempts} attempts**, {pacing}.",
        f"Health check: {check.target if check is not None else 'none'}.",
    ]
    if policy.depends_on:
        lines.append(f"Depends on: {', '.join(policy.depends_on)}.")
    if policy.max_attempts_per_hour is not None:
        lines.append(f"Storm guard: at most {policy.max_attempts_per_hour} attempts an hour.")
    if policy.escalate_to_manual:
        lines.append("Escalates to an operator once its attempts are used up.")
    return "\n\n".join(lines)
