"""``RecoveryPolicy(health_check_fn=...)`` with any callable, on the real dev server.

An allow-listed module-level function travels as a durable ``callable`` check;
anything else runs in the test process itself, served by the facade's own
health-check host, and fails the attempt with a message naming the host once
that host is gone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.client.coordinator_client import CoordinatorClient
from activities.settings import ALLOWED_MODULES_ENV
from starter.client.health_check_host import function_ref
from starter.client.orchestrator import RecoveryOrchestrator
from starter.client.recoveries import recovery_attempts, recovery_status
from tests.helpers import checks
from tests.helpers.waiting import eventually
from tests.helpers.workers import orchestrator_on
from workflows.coordinator_models import PolicyQueryInput
from workflows.errors import RecoveryValidationError
from workflows.models import RecoveryPolicy, RecoveryState, RecoveryStrategy

pytestmark = pytest.mark.timeout(120)

HOST_WAIT = timedelta(seconds=1)


def one_attempt(fn: Callable[[], object]) -> RecoveryPolicy:
    return RecoveryPolicy(max_retry_attempts=1, health_check_fn=fn)


async def test_a_closure_runs_in_this_process_and_its_side_effect_is_seen_here(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    seen: list[str] = []

    def check() -> bool:
        seen.append(service)
        return True

    async with orchestrator_on(dev_env, store, task_queue) as orchestrator:
        await orchestrator.schedule_recovery(
            service, RecoveryStrategy.IMMEDIATE, policy=one_attempt(check)
        )
        result = await orchestrator.execute_recovery(service)
    assert result.success and result.health_check_passed
    assert seen == [service]


@pytest.mark.parametrize(
    ("make_check", "detail"),
    [
        (lambda: (lambda: 1 / 0), "raised ZeroDivisionError"),
        (lambda: (lambda: None), "returned None"),
    ],
    ids=["raises", "falsy"],
)
async def test_a_failing_closure_fails_the_recovery(
    dev_env: WorkflowEnvironment,
    store: SQLiteBreakerStore,
    task_queue: str,
    service: str,
    make_check: Callable[[], Callable[[], object]],
    detail: str,
) -> None:
    async with orchestrator_on(dev_env, store, task_queue) as orchestrator:
        await orchestrator.schedule_recovery(
            service, RecoveryStrategy.IMMEDIATE, policy=one_attempt(make_check())
        )
        result = await orchestrator.execute_recovery(service)
        attempts = await recovery_attempts(dev_env.client, service)
    assert result.success is False and result.health_check_passed is False
    assert result.state is RecoveryState.FAILED and result.attempt_number == 1
    assert attempts is not None and attempts[0].health_check is not None
    assert detail in attempts[0].health_check.detail


async def test_closures_in_the_default_policy_and_a_set_policy_run_here_too(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    seen: list[str] = []

    def recording(name: str) -> Callable[[], bool]:
        def check() -> bool:
            seen.append(name)
            return True

        return check

    default = RecoveryPolicy(max_retry_attempts=1, health_check_fn=recording("default"))
    own = RecoveryPolicy(max_retry_attempts=1, health_check_fn=recording("own"))
    async with orchestrator_on(dev_env, store, task_queue, default_policy=default) as orchestrator:
        await orchestrator.set_recovery_policy(f"{service}-own", own)
        for suffix in ("default", "own"):
            await orchestrator.schedule_recovery(f"{service}-{suffix}", RecoveryStrategy.IMMEDIATE)
            assert (await orchestrator.execute_recovery(f"{service}-{suffix}")).success
    assert seen == ["default", "own"]


class Database:
    """A service object: its health checks are methods, one sync and one async."""

    def __init__(self) -> None:
        self.pings = 0

    def is_up(self) -> bool:
        self.pings += 1
        return True

    async def ping(self) -> bool:
        await asyncio.sleep(0.01)
        self.pings += 1
        return True


async def test_bound_methods_sync_and_async_are_health_checks(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    database = Database()
    async with orchestrator_on(dev_env, store, task_queue) as orchestrator:
        for suffix, fn in (("sync", database.is_up), ("async", database.ping)):
            await orchestrator.schedule_recovery(
                f"{service}-{suffix}", RecoveryStrategy.IMMEDIATE, policy=one_attempt(fn)
            )
        results = [
            await orchestrator.execute_recovery(f"{service}-{suffix}")
            for suffix in ("sync", "async")
        ]
    assert [r.success and r.health_check_passed for r in results] == [True, True]
    assert database.pings == 2


async def test_a_gone_host_fails_the_attempt_naming_it_within_the_host_wait(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(
        dev_env, store, task_queue, health_check_host_wait=HOST_WAIT
    ) as orchestrator:
        policy = RecoveryPolicy(max_retry_attempts=2, health_check_fn=lambda: True)
        await orchestrator.schedule_recovery(service, RecoveryStrategy.MANUAL, policy=policy)
        await eventually(
            lambda: recovery_status(dev_env.client, service),
            lambda s: s is not None and s.state is RecoveryState.AWAITING_MANUAL,
        )
        host = orchestrator._host
        assert host is not None
        await orchestrator.close()  # the host goes with it

        operator = RecoveryOrchestrator(
            client=dev_env.client,
            task_queue=task_queue,
            coordinator_workflow_id=orchestrator.coordinator_workflow_id,
        )
        approved = time.monotonic()
        await operator.approve_recovery(service, operator="alice")
        attempts = await eventually(
            lambda: recovery_attempts(dev_env.client, service),
            lambda a: a is not None and bool(a) and a[0].result is not None,
            timeout=HOST_WAIT.total_seconds() + 10,
        )
        took = time.monotonic() - approved
        assert await operator.cancel_recovery(service)
    assert attempts is not None and attempts[0].result == "failure"
    error = attempts[0].error or ""
    assert host.host in error and "did not pick the check up within 1000 ms" in error
    assert took < HOST_WAIT.total_seconds() + 8


async def test_an_allow_listed_module_function_travels_as_a_durable_callable_check(
    dev_env: WorkflowEnvironment,
    store: SQLiteBreakerStore,
    task_queue: str,
    service: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ALLOWED_MODULES_ENV, "tests.helpers.checks")
    durable = RecoveryPolicy(health_check_fn=checks.always_healthy)
    hosted = RecoveryPolicy(health_check_fn=lambda: True)
    async with orchestrator_on(dev_env, store, task_queue) as orchestrator:
        await orchestrator.set_recovery_policy(f"{service}-durable", durable)
        await orchestrator.set_recovery_policy(f"{service}-hosted", hosted)
        coordinator = CoordinatorClient(
            dev_env.client, workflow_id=orchestrator.coordinator_workflow_id
        )
        held = {
            name: await coordinator.get_recovery_policy(PolicyQueryInput(service_name=f"{service}-{name}"))
            for name in ("durable", "hosted")
        }
        # The original handed back the policy it was given, function and all.
        assert await orchestrator.get_recovery_policy(f"{service}-durable") is durable
        assert await orchestrator.get_recovery_policy(f"{service}-hosted") is hosted
        await orchestrator.schedule_recovery(service, RecoveryStrategy.IMMEDIATE, policy=durable)
        result = await orchestrator.execute_recovery(service)
    durable_check, hosted_check = held["durable"], held["hosted"]
    assert durable_check is not None and durable_check.health_check is not None
    assert durable_check.health_check.kind == "callable"
    assert durable_check.health_check.ref == "tests.helpers.checks:always_healthy"
    assert hosted_check is not None and hosted_check.health_check is not None
    assert hosted_check.health_check.kind == "hosted"
    assert result.success and result.health_check_passed


def test_only_importable_module_level_functions_have_a_reference() -> None:
    class Probe:
        def check(self) -> bool:
            return True

    def local() -> bool:
        return True

    assert function_ref(checks.always_healthy) == "tests.helpers.checks:always_healthy"
    assert function_ref(local) is None
    assert function_ref(lambda: True) is None
    assert function_ref(Probe().check) is None


@pytest.mark.parametrize("wait", [timedelta(0), timedelta(seconds=301)])
def test_a_host_wait_out_of_range_is_refused_when_the_facade_is_made(wait: timedelta) -> None:
    with pytest.raises(RecoveryValidationError, match="health_check_host_wait must be between"):
        RecoveryOrchestrator(health_check_host_wait=wait)
