"""``approvers`` (SPEC §10): who may approve a recovery's attempt, checked by the recovery itself.

An approval by anyone not listed is refused with ``code`` ``not_an_approver`` through
every door (the facade, ``recoveryctl approve``, ``execute`` of a MANUAL recovery, the
raw ``approve`` signal) and recorded in the recovery's ``ignored_signals``; the recovery
keeps waiting. Without ``approvers`` anyone may approve, as before.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.client.orchestrator import RecoveryOrchestrator
from starter.client.services_file import load_services_file
from starter.client.services_file_problems import ServicesFileError
from tests.helpers.recoveries import status_of
from tests.helpers.recoveryctl import Cli
from tests.helpers.waiting import eventually
from tests.helpers.workers import orchestrator_on
from workflows import ApproveInput, RecoveryPolicy, RecoveryState, RecoveryStrategy, ServiceRecovery
from workflows.constants import recovery_workflow_id
from workflows.errors import RecoveryOrchestratorError, RecoveryValidationError
from workflows.models import RecoveryResult

pytestmark = pytest.mark.timeout(120)

ALICE_AND_BOB = RecoveryPolicy(approvers=["alice", "bob"])


async def awaiting(
    orchestrator: RecoveryOrchestrator, client: Client, service: str, policy: RecoveryPolicy
) -> WorkflowHandle[ServiceRecovery, RecoveryResult]:
    """Schedule a MANUAL recovery with ``policy`` and return it once it awaits an operator."""
    await orchestrator.schedule_recovery(service, RecoveryStrategy.MANUAL, policy=policy)
    handle = client.get_workflow_handle_for(ServiceRecovery.run, recovery_workflow_id(service))

    async def state() -> RecoveryState | None:
        try:
            return (await status_of(handle)).state
        except RPCError:  # not started by the coordinator yet
            return None

    await eventually(state, lambda s: s is RecoveryState.AWAITING_MANUAL)
    return handle


async def test_a_listed_approver_approves(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue) as orchestrator:
        handle = await awaiting(orchestrator, dev_env.client, service, ALICE_AND_BOB)
        admitted = await orchestrator.approve_recovery(service, operator="bob", note="db is back")
        assert admitted.attempt == 1 and admitted.operator == "bob"
        history = await eventually(
            lambda: handle.query(ServiceRecovery.history), lambda h: bool(h) and h[-1].result is not None
        )
        assert history[-1].approved_by == "bob"
        assert not (await status_of(handle)).ignored_signals


async def test_an_unlisted_operator_is_refused_at_every_door_and_recorded(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    address = dev_env.client.service_client.config.target_host
    async with orchestrator_on(dev_env, store, task_queue) as orchestrator:
        handle = await awaiting(orchestrator, dev_env.client, service, ALICE_AND_BOB)
        # The facade.
        with pytest.raises(RecoveryOrchestratorError) as refused:
            await orchestrator.approve_recovery(service, operator="mallory")
        assert refused.value.code == "not_an_approver"
        assert "'mallory' is not an approver of" in str(refused.value) and "alice, bob" in str(refused.value)
        # recoveryctl: exit code 1, one line on stderr.
        cli = Cli(address, f"coordinator-{task_queue}", task_queue)
        code, out, err = await cli.ctl("approve", service, "--operator", "eve")
        assert code == 1 and out == "" and err.count("\n") == 1, err
        assert "'eve' is not an approver of" in err, err
        # execute_recovery of a MANUAL recovery is an approval too (its operator: the default).
        code, _, err = await cli.ctl("execute", service, "--operator", "trent")
        assert code == 1 and "'trent' is not an approver of" in err, err
        # The raw signal: its operator is self-declared, and refused all the same.
        await handle.signal(ServiceRecovery.approve, ApproveInput(operator="oscar", attempt=1))
        status = await eventually(
            lambda: status_of(handle), lambda s: any("oscar" in entry for entry in s.ignored_signals)
        )
        refusals = [entry for entry in status.ignored_signals if "not_an_approver" in entry]
        assert [who for who in ("mallory", "eve", "trent", "oscar") if any(who in e for e in refusals)] == [
            "mallory", "eve", "trent", "oscar"
        ]
        assert status.state is RecoveryState.AWAITING_MANUAL and status.attempt_count == 0
        # A listed approver still approves that very attempt.
        admitted = await orchestrator.approve_recovery(service, operator="alice")
        assert admitted.attempt == 1


async def test_without_approvers_anyone_approves(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue) as orchestrator:
        handle = await awaiting(orchestrator, dev_env.client, service, RecoveryPolicy())
        await handle.signal(ServiceRecovery.approve, ApproveInput(operator="whoever", attempt=1))
        history = await eventually(
            lambda: handle.query(ServiceRecovery.history), lambda h: bool(h) and h[-1].result is not None
        )
        assert history[-1].approved_by == "whoever"


@pytest.mark.parametrize(
    ("approvers", "message"),
    [
        ([], "approvers: name at least one operator"),
        (["alice", "alice"], "approvers names alice more than once"),
        ([""], "approvers: an operator's name cannot be empty"),
        (["x" * 201], "at most 200 characters"),
    ],
)
def test_a_bad_approvers_list_is_refused_naming_the_field(approvers: list[str], message: str) -> None:
    with pytest.raises((RecoveryValidationError, ValueError), match=message):
        RecoveryPolicy(approvers=approvers)


def test_the_services_file_takes_approvers_per_service_and_in_defaults(tmp_path: Path) -> None:
    path = tmp_path / "recovery.toml"
    path.write_text(
        '[defaults]\napprovers = ["oncall"]\n\n'
        '[services.api]\napprovers = ["alice", "bob"]\n\n'
        "[services.db]\nstrategy = \"manual\"\n"
    )
    watch = load_services_file(path)
    api, db = watch.services["api"].policy, watch.services["db"].policy
    assert api is not None and api.approvers == ["alice", "bob"]
    assert db is not None and db.approvers == ["oncall"]
    path.write_text('[services.api]\napprovers = "alice"\n')
    with pytest.raises(ServicesFileError, match=r"\[services.api\].*approvers"):
        load_services_file(path)
