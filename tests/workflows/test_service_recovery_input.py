"""Whatever a client sends as a ``ServiceRecovery`` input, the workflow ends Failed, not wedged.

Each input goes out as raw payloads (what any client, in any language, may send);
the recovery must fail with a ``RecoveryValidationError`` naming what was wrong,
run no activity, and never fail a workflow task.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.devtools.dev import find_binary
from tests.helpers.histories import record_history
from tests.helpers.raw_payloads import raw_json
from tests.helpers.recoveries import event_types, start_recovery, task_failures
from tests.helpers.waiting import eventually
from tests.helpers.workers import running_worker
from workflows.constants import recovery_workflow_id
from workflows.models import (
    RecoveryPhase,
    RecoveryResult,
    RecoveryState,
    ServiceRecoveryInput,
)
from workflows.service_recovery import ServiceRecovery



async def start_raw(
    client: Client, task_queue: str, service: str, args: list[Any]
) -> WorkflowHandle[Any, Any]:
    """Start ``ServiceRecovery`` by name with exactly these payloads."""
    return await client.start_workflow(
        "ServiceRecovery", args=args, id=recovery_workflow_id(service), task_queue=task_queue
    )


async def refusal_of(handle: WorkflowHandle[Any, Any]) -> ApplicationError:
    """Return the ApplicationError the workflow failed with."""
    with pytest.raises(WorkflowFailureError) as caught:
        await asyncio.wait_for(handle.result(), timeout=20)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


def bad_inputs(service: str) -> dict[str, tuple[list[Any], str]]:
    """Return each hostile input (its payloads) and what the failure must say."""
    return {
        "no input": ([], "got 0 inputs"),
        "two inputs": ([{"service_name": service}, {"service_name": service}], "got 2 inputs"),
        "null": ([None], "got null"),
        "a string": (["just text"], "got str"),
        "a list": ([[service]], "got list"),
        "an unknown field": ([{"service_name": service, "colour": "red"}], "colour"),
        "a bad strategy": ([{"service_name": service, "strategy": "sometimes"}], "strategy"),
        # Booleans are never numbers, nor strings booleans: `automatic` decides the evidence rule.
        "priority true": ([{"service_name": service, "priority": True}], "priority"),
        "priority 2.0": ([{"service_name": service, "priority": 2.0}], "priority"),
        "automatic yes": ([{"service_name": service, "automatic": "yes"}], "automatic"),
        "automatic 1": ([{"service_name": service, "automatic": 1}], "automatic"),
        "priority 2**63": (
            [raw_json(f'{{"service_name": "{service}", "priority": 9223372036854775808}}')],
            "priority",
        ),
        "backoff_multiplier 1e400": (
            [
                raw_json(
                    f'{{"service_name": "{service}", '
                    '"policy": {"backoff_multiplier": 1e400}}'
                )
            ],
            "backoff_multiplier",
        ),
        "no service_name": ([{"priority": 3}], "service_name"),
        "attempts past the bound": (
            [{"service_name": service, "policy": {"max_retry_attempts": 5000}}],
            "max_retry_attempts must be <= 1000",
        ),
    }


@pytest.mark.parametrize("case", list(bad_inputs("x")))
async def test_a_bad_input_fails_the_recovery_with_a_message_naming_it(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str, case: str
) -> None:
    args, expected = bad_inputs(service)[case]
    async with running_worker(dev_env.client, store, task_queue):
        handle = await start_raw(dev_env.client, task_queue, service, args)
        cause = await refusal_of(handle)
        status = await handle.query(ServiceRecovery.status)
        attempts = await handle.query(ServiceRecovery.history)
    assert cause.type == "RecoveryValidationError" and cause.non_retryable
    assert attempts == []
    assert cause.message.startswith("ServiceRecovery input") and expected in cause.message
    assert status.state is RecoveryState.FAILED and status.phase is RecoveryPhase.FINISHED
    assert status.service_name == service and status.last_error == cause.message
    kinds = await event_types(handle)
    assert await task_failures(handle) == []
    assert "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED" not in kinds
    assert kinds[-1] == "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED"
    if case == "no input":
        record_history(await handle.fetch_history(), "service_recovery_refused_input")


@pytest.mark.parametrize("encoding", [b"foo/bar", b"binary/protobuf", b"json/plain"])
async def test_a_payload_that_does_not_decode_fails_the_recovery_not_its_task(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str,
    encoding: bytes,
) -> None:
    """An unknown encoding, protobuf of no known type, bytes that are no JSON."""
    payload = RawValue(Payload(metadata={"encoding": encoding}, data=b"\x00\xffnot json"))
    async with running_worker(dev_env.client, store, task_queue):
        handle = await start_raw(dev_env.client, task_queue, service, [payload])
        cause = await refusal_of(handle)
        kinds = await event_types(handle)
    assert cause.type == "RecoveryValidationError" and cause.non_retryable
    assert "could not be decoded" in cause.message or "Invalid JSON" in cause.message
    assert await task_failures(handle) == []
    assert kinds[-1] == "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED"


async def test_a_recovery_under_another_services_workflow_id_is_refused(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    foreign_id = recovery_workflow_id(service + "-other")
    async with running_worker(dev_env.client, store, task_queue):
        handle = await dev_env.client.start_workflow(
            ServiceRecovery.run,
            ServiceRecoveryInput(service_name=service),
            id=foreign_id,
            task_queue=task_queue,
        )
        cause = await refusal_of(handle)
        record_history(await handle.fetch_history(), "service_recovery_foreign_id")
    assert cause.type == "RecoveryValidationError" and cause.non_retryable
    assert f"'{recovery_workflow_id(service)}'" in cause.message
    assert f"'{foreign_id}'" in cause.message
    kinds = await event_types(handle)
    assert await task_failures(handle) == []
    assert "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED" not in kinds
    assert store.get_state(service) is None and store.get_state(service + "-other") is None


async def test_a_good_recovery_still_runs_after_refused_ones(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with running_worker(dev_env.client, store, task_queue):
        refused = await start_raw(dev_env.client, task_queue, service, [])
        await refusal_of(refused)
        handle = await start_recovery(
            dev_env.client, task_queue, ServiceRecoveryInput(service_name=service)
        )
        result: RecoveryResult = await asyncio.wait_for(handle.result(), timeout=20)
    assert result.success and result.attempt_number == 1
    assert await task_failures(handle) == []


async def temporal_cli(env: WorkflowEnvironment, *args: str) -> tuple[int, str]:
    """Run the real ``temporal`` CLI against the test's dev server; return (exit code, output)."""
    process = await asyncio.create_subprocess_exec(
        find_binary("temporal"),
        *args,
        "--address",
        env.client.service_client.config.target_host,
        "--namespace",
        env.client.namespace,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=20)
    return process.returncode or 0, output.decode()


async def test_the_temporal_cli_start_without_input_and_a_two_input_signal(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    """What a user typing `temporal workflow start/signal` gets for a missing or doubled input."""
    async with running_worker(dev_env.client, store, task_queue):
        code, output = await temporal_cli(
            dev_env, "workflow", "start", "--type", "ServiceRecovery",
            "--task-queue", task_queue, "--workflow-id", recovery_workflow_id(service),
        )
        assert code == 0, output
        cause = await refusal_of(dev_env.client.get_workflow_handle(recovery_workflow_id(service)))
        assert "ServiceRecovery input takes one JSON object" in cause.message
        assert "got 0 inputs" in cause.message

        manual = service + "-m"
        manual_input = {"service_name": manual, "strategy": "manual"}
        code, output = await temporal_cli(
            dev_env, "workflow", "start", "--type", "ServiceRecovery",
            "--task-queue", task_queue, "--workflow-id", recovery_workflow_id(manual),
            "--input", json.dumps(manual_input),
        )
        assert code == 0, output
        code, output = await temporal_cli(
            dev_env, "workflow", "signal", "--workflow-id", recovery_workflow_id(manual),
            "--name", "approve", "--input", '{"operator": "a"}', "--input", '{"operator": "b"}',
        )
        assert code == 0, output
        handle = dev_env.client.get_workflow_handle(
            recovery_workflow_id(manual), result_type=RecoveryResult
        )
        status = await eventually(
            lambda: handle.query(ServiceRecovery.status), lambda s: bool(s.ignored_signals)
        )
        assert "rejected: approve signal takes one JSON object" in status.ignored_signals[0]
        assert status.attempt_count == 0 and status.state is RecoveryState.AWAITING_MANUAL
        code, output = await temporal_cli(
            dev_env, "workflow", "signal", "--workflow-id", recovery_workflow_id(manual),
            "--name", "approve", "--input", '{"operator": "cli-user"}',
        )
        assert code == 0, output
        result = await asyncio.wait_for(handle.result(), timeout=20)
        history = await handle.query(ServiceRecovery.history)
    assert result.success and [a.approved_by for a in history] == ["cli-user"]
    assert await task_failures(handle) == []

