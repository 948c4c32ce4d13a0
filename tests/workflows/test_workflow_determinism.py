"""Code under ``workflows/`` reads time, randomness and the environment only through ``workflow.*``.

Inside a workflow the wall clock, ``random`` and the environment differ between the first
run and a replay, and the sandbox no longer guards our own modules (they are passed through
for speed): this test is the guard. A line that may read the wall clock because it checks
``workflow.in_workflow()`` first says so with ``# determinism: outside workflows only``.
"""

from __future__ import annotations

import re
from datetime import datetime

from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.helpers.paths import REPO
from workflows.models import RecoveryResult, RecoveryState

WORKFLOWS = REPO / "workflows"
FORBIDDEN = re.compile(
    r"datetime\.(now|utcnow|today)\(|\btime\.(time|monotonic|perf_counter|sleep)\(|"
    r"^\s*import random|\brandom\.(random|randint|choice|uniform)\(|os\.environ|os\.getenv|"
    r"uuid\.uuid[14]\(|asyncio\.sleep\(",
    re.M,
)
ALLOWED = "# determinism: outside workflows only"


def test_no_workflow_module_reads_the_clock_randomness_or_the_environment() -> None:
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(WORKFLOWS.glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if FORBIDDEN.search(line) and ALLOWED not in line
    ]
    assert found == []


@workflow.defn(name="DefaultTimestamp")
class DefaultTimestamp:
    """Builds a result without a timestamp, as careless workflow code might."""

    @workflow.run
    async def run(self) -> list[datetime]:
        built = RecoveryResult(
            service_name="svc",
            success=True,
            attempt_number=1,
            total_attempts=1,
            elapsed_time_ms=0.0,
            state=RecoveryState.SUCCEEDED,
        )
        return [built.timestamp, workflow.now()]


async def test_a_default_timestamp_inside_a_workflow_is_the_workflows_clock(
    time_env: WorkflowEnvironment, task_queue: str
) -> None:
    # Unsandboxed, as the product's own modules run (they are passed through the sandbox).
    async with Worker(
        time_env.client,
        task_queue=task_queue,
        workflows=[DefaultTimestamp],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        stamps = await time_env.client.execute_workflow(
            DefaultTimestamp.run, id=f"default-timestamp-{task_queue}", task_queue=task_queue
        )
    built, now = stamps
    assert built == now
