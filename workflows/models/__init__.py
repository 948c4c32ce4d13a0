"""The domain models, with the original implementation's names, fields and messages.

Three rooms, one name to import them by (``from workflows.models import RecoveryPolicy``):

- ``door``: what every door refuses and how (bounds, service names, the constitutional
  hash, the wording of a refusal, the rules for carried state);
- ``recovery``: strategies and states, the policy, the task, the result, the input;
- ``messages``: what a running recovery answers and is told (approvals, cancels, its
  status and history, its reports to the coordinator).
"""

from workflows.models.door import (
    INT64_MAX,
    INT64_MIN,
    MAX_ATTEMPTS_PER_HOUR,
    MAX_BACKOFF_MULTIPLIER,
    MAX_DELAY_MS,
    MAX_DEPENDENCIES,
    MAX_QUOTED_NAME,
    MAX_QUOTED_REASON,
    MAX_REASONS,
    MAX_REPORT_NUMBER,
    MAX_RETRY_ATTEMPTS,
    MAX_TEXT,
    SERVICE_NAME_PATTERN,
    DoorInput,
    NoInput,
    OperatorText,
    Priority,
    StrictModel,
    StrictPriority,
    check_constitutional_hashes,
    check_door_time,
    decoding_carried_state,
    describe_validation_error,
    validate_constitutional_hash,
    validate_service_name,
    validation_refusal,
)
from workflows.models.messages import (
    ApproveInput,
    ApproveResult,
    AttemptAnswer,
    AttemptRecord,
    AttemptResultInput,
    CancelInput,
    RecoveryReport,
    RecoveryStatus,
)
from workflows.models.recovery import (
    Jitter,
    RecoveryPhase,
    RecoveryPolicy,
    RecoveryResult,
    RecoveryState,
    RecoveryStrategy,
    RecoveryTask,
    ServiceRecoveryInput,
)

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_ATTEMPTS_PER_HOUR",
    "MAX_BACKOFF_MULTIPLIER",
    "MAX_DELAY_MS",
    "MAX_DEPENDENCIES",
    "MAX_QUOTED_NAME",
    "MAX_QUOTED_REASON",
    "MAX_REASONS",
    "MAX_REPORT_NUMBER",
    "MAX_RETRY_ATTEMPTS",
    "MAX_TEXT",
    "SERVICE_NAME_PATTERN",
    "ApproveInput",
    "ApproveResult",
    "AttemptAnswer",
    "AttemptRecord",
    "AttemptResultInput",
    "CancelInput",
    "DoorInput",
    "Jitter",
    "NoInput",
    "OperatorText",
    "Priority",
    "RecoveryPhase",
    "RecoveryPolicy",
    "RecoveryReport",
    "RecoveryResult",
    "RecoveryState",
    "RecoveryStatus",
    "RecoveryStrategy",
    "RecoveryTask",
    "ServiceRecoveryInput",
    "StrictModel",
    "StrictPriority",
    "check_constitutional_hashes",
    "check_door_time",
    "decoding_carried_state",
    "describe_validation_error",
    "validate_constitutional_hash",
    "validate_service_name",
    "validation_refusal",
]
