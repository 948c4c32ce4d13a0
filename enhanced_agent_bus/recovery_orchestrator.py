"""The original import path: ``from enhanced_agent_bus.recovery_orchestrator import ...``."""

from starter.client.orchestrator import RecoveryOrchestrator
from workflows.constants import CONSTITUTIONAL_HASH
from workflows.errors import (
    RecoveryConstitutionalError,
    RecoveryOrchestratorError,
    RecoveryValidationError,
)
from workflows.models import (
    RecoveryPolicy,
    RecoveryResult,
    RecoveryState,
    RecoveryStrategy,
    RecoveryTask,
)

__all__ = [
    "CONSTITUTIONAL_HASH",
    "RecoveryConstitutionalError",
    "RecoveryOrchestrator",
    "RecoveryOrchestratorError",
    "RecoveryPolicy",
    "RecoveryResult",
    "RecoveryState",
    "RecoveryStrategy",
    "RecoveryTask",
    "RecoveryValidationError",
]
