"""The typed client checks every call: mypy refuses a wrong argument to any door (SPEC §9).

Each handler takes one typed argument, so the SDK's typed ``execute_update``,
``signal``, ``query`` and ``start_workflow`` carry its type to the caller. The
snippet below is what a client writes; mypy (strict, as ``make test`` runs it) must
accept the right calls and name each wrong one.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from mypy import api

from tests.helpers.paths import REPO

CLIENT = textwrap.dedent(
    """
    from temporalio.client import Client

    from workflows import (
        ApproveInput,
        CancelInput,
        CircuitWatch,
        PauseServiceInput,
        RecoveryCoordinator,
        ScheduleRecoveryInput,
        ServiceRecovery,
        ServiceRecoveryInput,
    )


    async def calls(client: Client) -> None:
        coordinator = client.get_workflow_handle_for(RecoveryCoordinator.run, "recovery-coordinator")
        recovery = client.get_workflow_handle_for(ServiceRecovery.run, "recovery-api")
        # Right:
        await coordinator.execute_update(
            RecoveryCoordinator.schedule_recovery, ScheduleRecoveryInput(service_name="api")
        )
        await coordinator.execute_update(
            RecoveryCoordinator.pause_service, PauseServiceInput(service_name="api")
        )
        await recovery.signal(ServiceRecovery.approve, ApproveInput(operator="alice"))
        await recovery.execute_update(ServiceRecovery.approve_attempt, ApproveInput(attempt=1))
        await client.start_workflow(
            ServiceRecovery.run, ServiceRecoveryInput(service_name="api"),
            id="recovery-api", task_queue="recovery-orchestrator",
        )
        # Wrong:
        await coordinator.execute_update(RecoveryCoordinator.schedule_recovery, 42)  # WRONG
        await recovery.signal(ServiceRecovery.approve, CancelInput(reason="x"))  # WRONG
        await coordinator.execute_update(
            RecoveryCoordinator.pause_service, ScheduleRecoveryInput(service_name="api")  # WRONG
        )
        await client.start_workflow(
            ServiceRecovery.run, {"service_name": "api"},  # WRONG
            id="recovery-api", task_queue="recovery-orchestrator",
        )
        await client.start_workflow(
            CircuitWatch.run, ScheduleRecoveryInput(service_name="api"),  # WRONG
            id="w", task_queue="recovery-orchestrator",
        )
    """
)


@pytest.mark.timeout(120)
def test_mypy_refuses_each_wrong_argument_and_accepts_the_right_ones(tmp_path: Path) -> None:
    client = tmp_path / "client_calls.py"
    client.write_text(CLIENT)
    wrong = {n for n, line in enumerate(CLIENT.splitlines(), start=1) if "# WRONG" in line}
    # The project's own cache: `make test` has just type-checked the product into it, so
    # only the snippet is checked anew (19 s from cold, a few warm).
    out, err, _ = api.run(
        [
            "--config-file", str(REPO / "pyproject.toml"),
            "--cache-dir", str(REPO / ".mypy_cache"),
            str(client),
        ]
    )
    assert err == ""
    # By file name: a snippet mypy has seen unchanged is answered from its cache, under
    # the path it had then (another test run's tmp_path).
    flagged = {
        int(line.split(":")[1])
        for line in out.splitlines()
        if line.split(":")[0].endswith(f"/{client.name}") and ": error:" in line
    }
    # Each wrong call is refused on its own line (or the call's first line, for the
    # argument spanning lines), and nothing else is.
    assert len(flagged) == len(wrong), out
    assert all(any(0 <= w - f <= 2 for f in flagged) for w in wrong), out
