"""The reference document's examples, with ``await`` added, run as users run them.

Each runs as its own process (``python -m examples.…``) against the real dev
server, configured only through ``TEMPORAL_ADDRESS`` / ``TEMPORAL_NAMESPACE``,
with a worker on the pinned task queue in a namespace of its own.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.client.connection import connect, ensure_search_attributes
from starter.client.coordinator_client import CoordinatorClient
from activities.settings import ALLOWED_MODULES_ENV
from tests.helpers.examples import EXAMPLES_NAMESPACE
from tests.helpers.paths import REPO
from tests.helpers.waiting import eventually
from worker import build_worker
from workflows import (
    CancelRecoveryInput,
    ConfigureInput,
    RecoveryStrategy,
    ScheduleRecoveryInput,
)

pytestmark = pytest.mark.timeout(90)


@pytest_asyncio.fixture
async def examples_client(dev_env: WorkflowEnvironment) -> Client:
    client = await connect(
        target_host=dev_env.client.service_client.config.target_host,
        namespace=EXAMPLES_NAMESPACE,
    )
    assert await ensure_search_attributes(client)
    return client


@pytest_asyncio.fixture
async def examples_worker(
    examples_client: Client, store: SQLiteBreakerStore
) -> AsyncIterator[None]:
    async with build_worker(examples_client, store):
        yield


async def run_example(module: str, client: Client, **extra_env: str) -> str:
    env = dict(os.environ)
    env.pop(ALLOWED_MODULES_ENV, None)
    env["TEMPORAL_ADDRESS"] = client.service_client.config.target_host
    env["TEMPORAL_NAMESPACE"] = EXAMPLES_NAMESPACE
    env.update(extra_env)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", f"examples.{module}",
        cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()[-2000:]
    return stdout.decode()


async def no_recovery_running(client: Client, service: str) -> None:
    """Wait until no run of the service's recovery is open (a new one can then start)."""

    async def open_runs() -> int:
        query = f"WorkflowId = 'recovery-{service}' AND ExecutionStatus = 'Running'"
        return len([w async for w in client.list_workflows(query)])

    await eventually(open_runs, lambda count: count == 0, timeout=30)


async def test_quick_start(examples_client: Client, examples_worker: None) -> None:
    output = await run_example("quick_start", examples_client)
    assert output.strip() == "Active recoveries: 1"


async def test_example_1_basic_recovery_succeeds_within_its_five_seconds(
    examples_client: Client, examples_worker: None
) -> None:
    output = await run_example("example_1_basic", examples_client)
    assert "'orchestrator_running': True" in output
    assert "'service_name': 'policy_service', 'success': True" in output


async def test_example_2_loop_ends_when_every_service_recovered(
    examples_client: Client, examples_worker: None
) -> None:
    await run_example("example_2_priorities", examples_client)
    status = await examples_client.get_workflow_handle("recovery-coordinator").query(
        "get_recovery_status"
    )
    recovered = [r["service_name"] for r in status["recent_history"] if r["state"] == "succeeded"]
    assert set(recovered[-5:]) == {"auth_service", "api_gateway", "database", "cache", "metrics"}
    assert status["orchestrator_running"] is False


async def test_example_2_says_which_unfinished_recovery_it_waits_for_and_how_to_clear_it(
    examples_client: Client, examples_worker: None
) -> None:
    """A MANUAL recovery left awaiting an operator (by the demo, say) keeps the reference's loop
    waiting: the example names it, its state and the command that clears it."""
    coordinator = CoordinatorClient(examples_client)
    await coordinator.ensure_running()
    await coordinator.configure(ConfigureInput(orchestrator_running=True))  # an earlier stop()
    await no_recovery_running(examples_client, "left_by_demo")
    await coordinator.schedule_recovery(
        ScheduleRecoveryInput(service_name="left_by_demo", strategy=RecoveryStrategy.MANUAL)
    )
    env = dict(os.environ)
    env.pop(ALLOWED_MODULES_ENV, None)
    env["TEMPORAL_ADDRESS"] = examples_client.service_client.config.target_host
    env["TEMPORAL_NAMESPACE"] = EXAMPLES_NAMESPACE
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "examples.example_2_priorities",
        cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    said: list[str] = []
    try:
        # The example's own five recover within seconds; then only the MANUAL one is left.
        # The hint follows the first line naming it (which, on a slow machine, may already
        # be "Waiting for 1"): read until both are there.
        def hinted() -> bool:
            return any("left_by_demo was not scheduled by this example" in line for line in said)

        while not (any(line.startswith("Waiting for 1 ") for line in said) and hinted()):
            line = await asyncio.wait_for(process.stdout.readline(), timeout=45)
            assert line, f"the example ended or went silent; it said: {said}"
            said.append(line.decode().rstrip())
        waiting = [line for line in said if line.startswith("Waiting for 1 ")][-1]
        assert waiting == (
            f"Waiting for 1 unfinished recovery in namespace '{EXAMPLES_NAMESPACE}': "
            "left_by_demo (awaiting_manual)"
        ), said
        assert any(
            "left_by_demo was not scheduled by this example" in line
            and "recoveryctl approve left_by_demo --operator you, or "
            "recoveryctl cancel left_by_demo" in line
            for line in said
        ), said
        await coordinator.cancel_recovery(CancelRecoveryInput(service_name="left_by_demo"))
        rest, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()[-2000:]
    status = await coordinator.get_recovery_status()
    assert status is not None
    recovered = {r["service_name"] for r in status["recent_history"] if r["state"] == "succeeded"}
    assert {"auth_service", "api_gateway", "database", "cache", "metrics"} <= recovered


@pytest.mark.parametrize(
    ("allow_list", "travels_as"),
    [
        # Listed: the worker runs it (durable).
        ("examples.example_3_health_checks", b'"ref":"examples.example_3_health_checks:check_api_health"'),
        # Not listed: the example's own process hosts it, for as long as it lives.
        ("", b'"kind":"hosted"'),
    ],
    ids=["allow-listed", "hosted"],
)
async def test_example_3_health_check_fn_travels_as_a_check(
    examples_client: Client, examples_worker: None, allow_list: str, travels_as: bytes
) -> None:
    await no_recovery_running(examples_client, "api_service")  # e.g. the other case's
    await run_example(
        "example_3_health_checks", examples_client, **{ALLOWED_MODULES_ENV: allow_list}
    )
    status = await examples_client.get_workflow_handle("recovery-coordinator").query(
        "get_recovery_status"
    )
    assert status["recent_history"][-1]["service_name"] == "api_service"
    assert status["recent_history"][-1]["state"] == "cancelled"
    handle = examples_client.get_workflow_handle("recovery-api_service")
    start_input = (await handle.fetch_history()).events[0]
    payload = start_input.workflow_execution_started_event_attributes.input.payloads[0].data
    assert travels_as in payload


async def test_circuit_breaker_integration_recovers_a_pybreaker_breaker(
    examples_client: Client, examples_worker: None, store: SQLiteBreakerStore
) -> None:
    import pybreaker

    from starter.breakers import breaker

    store_url = f"sqlite:///{store.path}"
    guarded = breaker("payments_api", fail_max=2, reset_timeout=3600, store_url=store_url)

    def down() -> None:
        raise ConnectionError("payments_api is down")

    for _ in range(2):
        with pytest.raises((ConnectionError, pybreaker.CircuitBreakerError)):
            guarded.call(down)
    assert guarded.current_state == "open"
    await no_recovery_running(examples_client, "payments_api")

    output = await run_example(
        "circuit_breaker_integration", examples_client, RECOVERY_CIRCUIT_STORE=store_url
    )
    assert "Scheduled recovery for payments_api" in output
    assert "Overall health: critical; open: ['payments_api']" in output
    # The worker recovers it: no health check in the policy, so the first attempt closes it.
    await eventually(lambda: asyncio.to_thread(lambda: guarded.current_state), lambda s: s == "closed", timeout=30)
    assert guarded.call(lambda: "ok") == "ok"
