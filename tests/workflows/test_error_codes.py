"""Refusals carry a stable ``code`` (SPEC §3): clients branch on it, never on the message."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from tests.helpers.workers import orchestrator_on
from workflows.errors import (
    RecoveryConstitutionalError,
    RecoveryOrchestratorError,
    RecoveryValidationError,
    from_temporal,
    to_application_error,
)

pytestmark = pytest.mark.timeout(90)


def test_an_error_crosses_temporal_with_its_class_message_code_and_names() -> None:
    sent = RecoveryValidationError("No active recovery task for service 'api'", code="unknown_service", service="api")
    carried = to_application_error(sent)
    assert carried.type == "RecoveryValidationError" and carried.non_retryable
    assert carried.details[0] == {"code": "unknown_service", "service": "api"}
    back = from_temporal(carried)
    assert isinstance(back, RecoveryValidationError)
    assert (str(back), back.code, back.names) == (str(sent), "unknown_service", {"service": "api"})


def test_each_class_has_its_default_code() -> None:
    assert RecoveryValidationError("x").code == "bad_field"
    assert RecoveryConstitutionalError("x").code == "constitutional_hash"
    assert RecoveryOrchestratorError("x").code == "refused"


async def raw_refusal(handle: WorkflowHandle[Any, Any], update: str, request: dict[str, object]) -> dict[str, object]:
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(update, request)
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError)
    detail = cause.details[0]
    assert isinstance(detail, dict)
    return {"type": cause.type, **detail}


async def test_raw_updates_are_refused_with_the_documented_type_and_code(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue) as orch:
        handle = dev_env.client.get_workflow_handle(f"coordinator-{task_queue}")
        assert await raw_refusal(handle, "cancel_recovery", {"service_name": service}) == {
            "type": "RecoveryValidationError", "code": "unknown_service", "service": service,
        }
        assert await raw_refusal(handle, "schedule_recovery", {"service_name": "coordinator"}) == {
            "type": "RecoveryValidationError", "code": "reserved_name", "field": "service_name",
        }
        wrong = await raw_refusal(
            handle, "schedule_recovery", {"service_name": service, "constitutional_hash": "bad"}
        )
        assert wrong == {"type": "RecoveryConstitutionalError", "code": "constitutional_hash"}
        bad = await raw_refusal(handle, "schedule_recovery", {"service_name": service, "priority": "x"})
        assert bad["code"] == "bad_field" and bad["field"] == "priority"
        cycle = await raw_refusal(
            handle,
            "set_recovery_policy",
            {"service_name": service, "policy": {"depends_on": [service]}},
        )
        assert cycle["code"] == "dependency_cycle" and cycle["service"] == service
        # The facade still raises the original's classes, with the code as well.
        with pytest.raises(RecoveryValidationError) as unknown:
            await orch.execute_recovery(f"{service}-never")
        assert unknown.value.code == "unknown_service"
        await orch.stop()
        stopped = await raw_refusal(handle, "schedule_recovery", {"service_name": service})
        assert stopped == {"type": "RecoveryOrchestratorError", "code": "stopped"}
