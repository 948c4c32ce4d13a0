"""Hostile input through every door: a specific error, nothing changed, nothing wedged.

Issue 10, item 6. Each row of ``hostile_table.TABLE`` is one hostile input, and one
test here: it sends the input through every door it can enter (the facade, a raw
update or signal, ``temporal workflow start`` and friends, ``recoveryctl``, the
services file), the doors side by side. Each door has a world of its own (one
worker serves them all): a coordinator holding recoveries in known states (in
backoff, awaiting an operator, in the middle of an approved attempt, finished,
cancelled). Every cell checks:

- the specific outcome: the error's message (the field and what was wrong), its
  class, recoveryctl's exit code (SPEC §7: 2 bad input, 1 refused) and its one
  line on stderr; or, for valid input, how the recovery it set going ended;
- that the coordinator's ``get_recovery_status`` and ``get_configuration`` and
  the running recoveries' statuses are unchanged (a signal may add its own
  rejection; an accepted input only its own finished recovery);
- that the coordinator still runs and never failed a workflow task.

The last row ("control") schedules a good recovery at every door, which must
succeed. The run prints the table; ``make hostile-doc`` (every row, with
``RECOVERY_HOSTILE_DOC=write``) also writes ``docs/hostile-input.md``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, suppress
from typing import Any

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from tests.helpers.waiting import eventually
from tests.helpers.workers import running_worker
from tests.reliability.hostile_doors import (
    Door,
    Ending,
    Expect,
    Harness,
    LogTap,
    Observed,
    Snapshot,
    World,
    others_status,
)
from tests.reliability.hostile_report import (
    DOC,
    WRITE_DOC_ENV,
    Entry,
    Report,
    excerpt,
    outcome_label,
)
from tests.helpers.servers import gated_health_server
from tests.reliability.hostile_table import CELLS, TABLE, Row, roles_of

pytestmark = pytest.mark.timeout(60)


def service_of(door: Door, row: Row) -> str:
    """Return the cell's own service name (what ``@svc`` stands for)."""
    return f"hx-{door.slug}-{row.id}"


class Doors:
    """One harness per door, opened on first use, with the roles that door's rows need."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.opened: dict[Door, Harness] = {}
        self.broken: dict[Door, str] = {}

    async def get(self, door: Door) -> Harness:
        """Return the door's harness; one that failed to open fails every cell at once."""
        if door in self.broken:
            pytest.fail(f"the {door.value} door could not be set up: {self.broken[door]}")
        if door not in self.opened:
            try:
                harness = await Harness.open(door, self.world, roles_of(door))
            except Exception as err:
                self.broken[door] = f"{type(err).__name__}: {err}"[:1000]
                raise
            self.opened[door] = harness
        return self.opened[door]

    async def close(self) -> None:
        """Stop every door's coordinator: nothing of this module keeps running."""
        for harness in self.opened.values():
            with suppress(Exception):
                await harness.facade.stop()


@pytest_asyncio.fixture(scope="module")
async def doors(
    dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Doors]:
    """One worker and one gated health server for the module; a coordinator per door."""
    tmp = tmp_path_factory.mktemp("hostile")
    store = SQLiteBreakerStore(tmp / "breakers.db")
    logs = LogTap()
    sdk_logger = logging.getLogger("temporalio")
    task_queue = f"tq-hx-{uuid.uuid4().hex[:10]}"
    async with AsyncExitStack() as stack:
        stack.callback(store.close)
        sdk_logger.addHandler(logs)
        stack.callback(sdk_logger.removeHandler, logs)
        await stack.enter_async_context(running_worker(dev_env.client, store, task_queue))
        # Entered last, left first: its held health checks answer before the worker stops.
        gate = await stack.enter_async_context(gated_health_server())
        world = World(
            client=dev_env.client,
            address=dev_env.client.service_client.config.target_host,
            task_queue=task_queue,
            gate=gate,
            tmp=tmp,
            logs=logs,
        )
        opened = Doors(world)
        yield opened
        await opened.close()


@pytest.fixture(scope="module")
def report(request: pytest.FixtureRequest) -> Iterator[Report]:
    """Collect every cell; at the end print the table and, for a full run, write the doc."""
    collected = Report()
    yield collected
    plugins = request.config.pluginmanager
    terminal: Any = plugins.get_plugin("terminalreporter")
    capture: Any = plugins.get_plugin("capturemanager")
    written = collected.covers(CELLS) and os.environ.get(WRITE_DOC_ENV) == "write"
    if written:
        DOC.write_text(collected.markdown(), encoding="utf-8")
    if terminal is None or capture is None or not collected.entries:
        return
    with capture.global_and_fixture_disabled():  # past pytest's capture, without -s
        terminal.ensure_newline()
        terminal.write_sep("=", "hostile input table (issue 10, item 6)")
        for line in collected.terminal_lines():
            terminal.write_line(line)
        if written:
            terminal.write_line(f"written: {DOC.relative_to(DOC.parents[1])}")


@pytest.mark.parametrize("row", TABLE, ids=[r.id for r in TABLE])
async def test_hostile_input(row: Row, doors: Doors, report: Report) -> None:
    """One row at every door it can enter, the doors side by side (each has its own world)."""
    results = await asyncio.gather(*(run_cell(door, row, doors, report) for door in row.cells))
    failed = [f"[{door.value}] {problem}" for door, problems, reason in results
              if reason is None for problem in problems]
    known = [f"[{door.value}] {reason}" for door, problems, reason in results
             if problems and reason is not None]
    assert not failed, "\n".join(failed)
    if known:
        pytest.xfail("; ".join(known))


async def run_cell(
    door: Door, row: Row, doors: Doors, report: Report
) -> tuple[Door, list[str], str | None]:
    """Run one cell; return its door, what went wrong, and its known-bug reason."""
    harness = await doors.get(door)
    cell = row.cells[door]
    svc = service_of(door, row)
    if row.needs == "stopped":
        await harness.ensure_stopped()
    else:
        await harness.ensure_running()
    before = await harness.snapshot()
    observed = await cell.probe(harness, svc)
    problems = outcome_problems(observed, cell.expect, row.secret)
    ending: dict[str, Any] | None = None
    if not problems and observed.outcome == "accepted" and cell.expect.ends is not None:
        ending, wrong = await ending_problems(harness, door, svc, observed, cell.expect.ends)
        problems += wrong
    elif observed.outcome == "accepted" and "accepted" not in cell.expect.outcomes:
        await clean_up(harness, svc)
    settle = observed.outcome == "accepted" and cell.expect.state == "unchanged"
    after = await (harness.settled(before, svc) if settle else harness.snapshot())
    problems += state_problems(before, after, svc, observed, cell.expect)
    try:
        await harness.assert_healthy(every_run=row.id == "control")
    except AssertionError as err:
        problems.append(f"coordinator unhealthy: {err}")
    verdict = "ok" if not problems else ("FAIL" if cell.known_bug is None else "known bug")
    shown, fragment = observed.message, cell.expect.fragment
    if ending is not None and cell.expect.ends is not None:  # how its recovery ended says more
        shown, fragment = ending["error_message"] or ending["state"], cell.expect.ends.fragment
    state = None if ending is None else ending["state"]
    label = outcome_label(observed, state)
    report.add(Entry(row, door, verdict, label, excerpt(shown, fragment)))
    return door, problems, cell.known_bug


def outcome_problems(observed: Observed, expect: Expect, secret: str | None) -> list[str]:
    """Compare what the door did with what the row expects there."""
    problems = list(observed.problems)
    shown = observed.message[:400]
    if observed.outcome not in expect.outcomes:
        return problems + [f"{observed.outcome}, expected {'/'.join(expect.outcomes)}: {shown}"]
    if observed.outcome == expect.outcomes[0]:  # a race's other outcome has no fragment
        if expect.fragment not in observed.message:
            problems.append(f"message lacks {expect.fragment!r}: {shown}")
        if expect.error_type is not None and observed.error_type != expect.error_type:
            problems.append(f"error type {observed.error_type}, expected {expect.error_type}")
    if expect.code is not None and observed.code != expect.code:
        problems.append(f"exit code {observed.code}, expected {expect.code}: {shown}")
    if secret is not None and secret in observed.message:
        problems.append(f"the secret {secret!r} is in the answer: {shown}")
    return problems


async def ending_problems(
    harness: Harness, door: Door, svc: str, observed: Observed, ending: Ending
) -> tuple[dict[str, Any], list[str]]:
    """Wait for the accepted input's recovery to end; compare with ``ending``."""
    if door is Door.TEMPORAL:  # started straight: the recovery's own result
        result: dict[str, Any] = observed.value
    else:
        result = await harness.ending_of(svc)
    problems = []
    if result["state"] != ending.state:
        problems.append(f"ended {result['state']}, expected {ending.state}: {result}")
    if ending.fragment not in (result["error_message"] or ""):
        problems.append(f"error_message lacks {ending.fragment!r}: {result['error_message']}")
    if ending.priority is not None:
        priority = await harness.priority_of(svc)
        if priority != ending.priority:
            problems.append(f"ran with RecoveryPriority {priority}, expected {ending.priority}")
    return result, problems


def state_problems(
    before: Snapshot, after: Snapshot, svc: str, observed: Observed, expect: Expect
) -> list[str]:
    """What changed that must not have.

    ``stopped`` rows: once shutdown has returned nothing is queued or running. Others:
    everything as it was, but for the cell's own finished recovery (accepted input)
    and its own rejection or ignored-signal entry (a signal).
    """
    if expect.state == "stopped":
        status = after.status
        left = (status["orchestrator_running"], status["active_recoveries"],
                status["queued_recoveries"], sorted(status["services"]))
        return [] if left == (False, 0, 0, []) else [f"after shutdown: {left}"]
    problems = []
    old, new = before.status["recent_history"], after.status["recent_history"]
    added = new[len(old):]
    if new[: len(old)] != old:
        problems.append("recent_history was rewritten")
    if added and (observed.outcome != "accepted" or {r["service_name"] for r in added} != {svc}):
        problems.append(f"recent_history gained {[(r['service_name'], r['state']) for r in added]}")
    for name in ("status", "config", "recoveries"):
        was, now = getattr(before, name), getattr(after, name)
        if name == "status":
            was, now = others_status(was, svc), others_status(now, svc)
        if was != now:
            problems.append(f"{name} changed:\n  before {was}\n  after  {now}")
    own = {observed.message}
    fresh = [line for line in after.rejected if line not in before.rejected]
    if fresh and set(fresh) != own:
        problems.append(f"rejected_signals gained {fresh}")
    for role, lines in after.ignored.items():
        fresh = [line for line in lines if line not in before.ignored.get(role, [])]
        if fresh and set(fresh) != own:
            problems.append(f"{role}'s ignored_signals gained {fresh}")
    return problems


async def clean_up(harness: Harness, svc: str) -> None:
    """Take back what a wrongly accepted input scheduled, so the next row starts clean."""
    if harness.stopped:
        return
    with suppress(Exception):
        await harness.facade.cancel_recovery(svc)
    await eventually(harness.coordinator.status, lambda s: svc not in s["services"], timeout=30)
