"""The import clients and tests use (SPEC §9): the workflows and their inputs from ``workflows``."""

from __future__ import annotations

import subprocess
import sys

import workflows


def test_the_workflows_and_their_inputs_import_from_the_package() -> None:
    from workflows import (
        ApproveInput,
        CancelInput,
        CircuitWatch,
        RecoveryCoordinator,
        ScheduleRecoveryInput,
        ServiceRecovery,
    )

    assert ServiceRecovery.__module__ == "workflows.service_recovery"
    assert {RecoveryCoordinator.__name__, CircuitWatch.__name__} == {"RecoveryCoordinator", "CircuitWatch"}
    assert ApproveInput(operator="alice").operator == "alice"
    assert CancelInput(reason="x").reason == "x"
    assert ScheduleRecoveryInput(service_name="api").priority == 1
    assert all(hasattr(workflows, name) for name in workflows.__all__)


def test_importing_one_module_first_works_in_a_fresh_interpreter() -> None:
    """No import cycle: a client importing a leaf module first still gets the package."""
    code = "import workflows.constants; from workflows import RecoveryCoordinator; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr


def test_the_facade_imports_from_starter_and_the_cli_does_not_load_it() -> None:
    """``starter.RecoveryOrchestrator`` (SPEC §7) is the facade, loaded on first use only."""
    code = (
        "import sys, starter.cli, starter.breakers\n"
        "assert 'starter.client.orchestrator' not in sys.modules\n"
        "from starter import RecoveryOrchestrator\n"
        "from enhanced_agent_bus.recovery_orchestrator import RecoveryOrchestrator as Old\n"
        "assert RecoveryOrchestrator is Old\n"
        "print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr
