"""Deterministic code only: the workflows, their models, errors and the backoff maths.

Clients and tests import the workflows and their input models from here (SPEC §9),
whatever module each lives in::

    from workflows import RecoveryCoordinator, ScheduleRecoveryInput
"""

from workflows.circuit_watch import CircuitWatch
from workflows.circuit_watch_models import CircuitWatchInput, WatchInput, WatchResult
from workflows.coordinator import RecoveryCoordinator
from workflows.coordinator_models import (
    CancelRecoveryInput,
    ConfigureInput,
    CoordinatorInput,
    ExecuteRecoveryInput,
    PauseServiceInput,
    PolicyQueryInput,
    ResumeServiceInput,
    ScheduleRecoveriesInput,
    ScheduleRecoveryInput,
    SetRecoveryPolicyInput,
    ShutdownInput,
    StatusPageInput,
)
from workflows.models import (
    ApproveInput,
    ApproveResult,
    CancelInput,
    RecoveryPolicy,
    RecoveryResult,
    RecoveryState,
    RecoveryStrategy,
    ServiceRecoveryInput,
)
from workflows.service_recovery import ServiceRecovery

__all__ = [
    "ApproveInput",
    "ApproveResult",
    "CancelInput",
    "CancelRecoveryInput",
    "CircuitWatch",
    "CircuitWatchInput",
    "ConfigureInput",
    "CoordinatorInput",
    "ExecuteRecoveryInput",
    "PauseServiceInput",
    "PolicyQueryInput",
    "RecoveryCoordinator",
    "RecoveryPolicy",
    "RecoveryResult",
    "RecoveryState",
    "RecoveryStrategy",
    "ResumeServiceInput",
    "ScheduleRecoveriesInput",
    "ScheduleRecoveryInput",
    "ServiceRecovery",
    "ServiceRecoveryInput",
    "SetRecoveryPolicyInput",
    "ShutdownInput",
    "StatusPageInput",
    "WatchInput",
    "WatchResult",
]
