"""Figures 5 and 7: history events per attempt, coordinator events per recovery, timer lateness.

A backoff run: 100 EXPONENTIAL recoveries whose TCP check hits a closed loopback
port, 4 attempts each, so 3 backoff timers of 1, 2 and 4 s per recovery, all
started together; then, on their own, 100 bare workflows sleeping the same three
timers (``BareTimers``) as the lateness baseline.

- events per attempt: each recovery's history length over the attempts it made
  (from the result its history ends with), for this run and for 50 of figure 3's
  IMMEDIATE ones, beside one bare workflow of three no-op activities (one bare
  "attempt"). Graded on the 4-attempt run, and per additional attempt (from one
  timer's firing to the next's); the IMMEDIATE run's recoveries make one attempt
  each, so its figure is mostly the fixed start and end and is shown, not graded;
- coordinator events per recovery: every run of the coordinator's id
  (continue-as-new included) summed, over the recoveries it ran;
- timer lateness: per fired timer, the start of the next workflow task minus the
  time the timer was due (see ``histories.timer_lateness_ms``).
"""

from __future__ import annotations

import asyncio

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from bench.baseline import BareTimers
from bench.environment import Bench
from bench.histories import attempts_made, events_of, events_of_many, run_chain, timer_lateness_ms
from bench.recovery_throughput import ThroughputRun
from bench.report import Report, Row, Target
from bench.scheduling import (
    coordinator_settled,
    poll_until,
    requests,
    schedule_in_batches,
    tcp_policy,
)
from bench.stats import Latency
from workflows.constants import recovery_workflow_id
from workflows.models import RecoveryStrategy

SERVICES = 100
ATTEMPTS = 4
DELAYS_MS = [1000, 2000, 4000]
IMMEDIATE_SAMPLE = 50
TIMEOUT = 120.0
# Issue 8's measurement before the change; the target is half of it.
HISTORIC_EVENTS_PER_ATTEMPT = 33.0
EVENTS_TARGET = HISTORIC_EVENTS_PER_ATTEMPT / 2
LATENESS_P99_TARGET_MS = 1000.0


async def measure_history_figures(bench: Bench, report: Report, throughput: ThroughputRun) -> None:
    """Run the backoff case and its bare timers; add the events and lateness rows."""
    coordinator_id, backoff_ids = await _run_backoff_case(bench)
    bare_ids = await _run_bare_timers(bench)
    backoff_events = await events_of_many(bench.client, backoff_ids)
    bare_attempt = len(await events_of(bench.client, throughput.bare_ids[0]))
    immediate_events = await events_of_many(
        bench.client, throughput.recovery_ids[:IMMEDIATE_SAMPLE]
    )
    report.add(
        await _events_row(bench, f"EXPONENTIAL, {ATTEMPTS} attempts", backoff_events, bare_attempt)
    )
    report.add(_additional_attempt_row(backoff_events))
    report.add(
        await _events_row(
            bench, "IMMEDIATE, healthy", immediate_events, bare_attempt, graded=False
        )
    )
    for label, workflow_id, recoveries in (
        (
            f"{len(throughput.recovery_ids):,} IMMEDIATE",
            throughput.coordinator_id,
            len(throughput.recovery_ids),
        ),
        (f"{SERVICES} × {ATTEMPTS} attempts", coordinator_id, SERVICES),
    ):
        report.add(await _coordinator_row(bench, label, workflow_id, recoveries))
    report.add(_lateness_row(backoff_events, await events_of_many(bench.client, bare_ids)))


async def _run_backoff_case(bench: Bench) -> tuple[str, list[str]]:
    """Run the 100 failing recoveries to their end; return the coordinator's id and theirs."""
    _, coordinator = await bench.orchestrator("backoff", slots=SERVICES)
    names = [f"backoff-{bench.run_id}-{index:03d}" for index in range(SERVICES)]
    policy = tcp_policy(
        bench.closed_port,
        max_retry_attempts=ATTEMPTS,
        initial_delay_ms=DELAYS_MS[0],
        max_delay_ms=DELAYS_MS[-1],
        backoff_multiplier=2.0,
    )
    await schedule_in_batches(
        coordinator, requests(names, RecoveryStrategy.EXPONENTIAL_BACKOFF, policy=policy)
    )
    await poll_until(
        coordinator_settled(coordinator, lambda status: status["active_recoveries"] == 0),
        TIMEOUT,
        f"{SERVICES} backoff recoveries finished",
    )
    return coordinator.workflow_id, [recovery_workflow_id(name) for name in names]


async def _run_bare_timers(bench: Bench) -> list[str]:
    """Run as many bare workflows through the same three timers; return their ids."""
    bare_ids = [f"bare-timers-{bench.run_id}-{index:03d}" for index in range(SERVICES)]
    handles = await asyncio.gather(
        *(
            bench.client.start_workflow(
                BareTimers.run, DELAYS_MS, id=workflow_id, task_queue=bench.bare_queue
            )
            for workflow_id in bare_ids
        )
    )
    await asyncio.wait_for(asyncio.gather(*(handle.result() for handle in handles)), TIMEOUT)
    return bare_ids


async def _events_row(
    bench: Bench,
    label: str,
    histories: list[list[HistoryEvent]],
    bare_attempt: int,
    *,
    graded: bool = True,
) -> Row:
    """Events over attempts, of the recoveries that completed or failed (not cancelled)."""
    recoveries = events = attempts = 0
    for history in histories:
        made = await attempts_made(bench.client, history)
        if made is not None:
            recoveries, events, attempts = recoveries + 1, events + len(history), attempts + made
    per_attempt = events / attempts
    return Row(
        f"history events per attempt, {label}",
        f"{per_attempt:.1f}",
        f"{bare_attempt} (bare attempt)",
        per_attempt / bare_attempt,
        [_events_target(per_attempt)] if graded else [],
        data={"recoveries": recoveries, "events": events, "attempts": attempts},
    )


def _additional_attempt_row(histories: list[list[HistoryEvent]]) -> Row:
    """Events from one backoff timer's firing to the next's: one more attempt and its wait."""
    fired = [_timers_fired(history) for history in histories]
    gaps = [later - earlier for each in fired for earlier, later in zip(each, each[1:])]
    per_attempt = sum(gaps) / len(gaps)
    return Row(
        "history events per additional attempt (timer to timer), EXPONENTIAL",
        f"{per_attempt:.1f}",
        targets=[_events_target(per_attempt)],
        data={"gaps": len(gaps), "mean": per_attempt},
    )


def _timers_fired(history: list[HistoryEvent]) -> list[int]:
    fired = EventType.EVENT_TYPE_TIMER_FIRED
    return [index for index, event in enumerate(history) if event.event_type == fired]


def _events_target(per_attempt: float) -> Target:
    return Target(
        f"≤ {EVENTS_TARGET:g} (½ of {HISTORIC_EVENTS_PER_ATTEMPT:g} pre-change)",
        per_attempt,
        EVENTS_TARGET,
        False,
    )


async def _coordinator_row(bench: Bench, label: str, coordinator_id: str, recoveries: int) -> Row:
    chain = await run_chain(bench.client, coordinator_id)
    return Row(
        f"coordinator events per recovery, {label}",
        f"{chain.events / recoveries:.1f} ({chain.signals / recoveries:.1f} signals)",
        data={
            "events": chain.events,
            "signals": chain.signals,
            "runs": chain.runs,
            "recoveries": recoveries,
        },
    )


def _lateness_row(ours: list[list[HistoryEvent]], theirs: list[list[HistoryEvent]]) -> Row:
    mine = Latency.of([ms for events in ours for ms in timer_lateness_ms(events)])
    bare = Latency.of([ms for events in theirs for ms in timer_lateness_ms(events)])
    return Row(
        "backoff timer lateness p50 / p99",
        mine.text(),
        bare.text(),
        mine.p99 / bare.p99 if bare.p99 > 0 else None,
        [
            Target(
                f"p99 ≤ {LATENESS_P99_TARGET_MS:g} ms",
                mine.p99,
                LATENESS_P99_TARGET_MS,
                False,
                " ms",
            )
        ],
        data={"product": mine.as_json(), "bare_timers": bare.as_json()},
    )
