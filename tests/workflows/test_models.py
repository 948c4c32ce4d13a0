"""The domain models: the original's defaults, constraints, messages and shapes."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from workflows.backoff import apply_jitter, base_delay_ms, delay_ms
from workflows.errors import (
    RecoveryConstitutionalError,
    RecoveryOrchestratorError,
    RecoveryValidationError,
)
from workflows.models import (
    MAX_DELAY_MS,
    Jitter,
    RecoveryPolicy,
    RecoveryResult,
    RecoveryState,
    RecoveryStrategy,
    RecoveryTask,
    ServiceRecoveryInput,
    validate_constitutional_hash,
)
from tests.helpers import checks

EXP, LIN, IMM = (
    RecoveryStrategy.EXPONENTIAL_BACKOFF,
    RecoveryStrategy.LINEAR_BACKOFF,
    RecoveryStrategy.IMMEDIATE,
)


def test_policy_defaults_are_the_originals() -> None:
    policy = RecoveryPolicy()
    assert (policy.max_retry_attempts, policy.backoff_multiplier) == (5, 2.0)
    assert (policy.initial_delay_ms, policy.max_delay_ms) == (1000, 60000)
    assert policy.health_check is None and policy.health_check_fn is None
    assert policy.constitutional_hash == "cdd01ef066bc6cf2"
    assert policy.jitter is Jitter.NONE and policy.escalate_to_manual is False


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_retry_attempts": 0}, "max_retry_attempts must be >= 1"),
        ({"backoff_multiplier": 0.5}, "backoff_multiplier must be >= 1.0"),
        ({"initial_delay_ms": -1}, "initial_delay_ms must be >= 0"),
        ({"initial_delay_ms": 5000, "max_delay_ms": 100}, "max_delay_ms must be >= initial_delay_ms"),
    ],
)
def test_each_policy_constraint_raises_the_original_message(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(RecoveryValidationError) as caught:
        RecoveryPolicy(**fields)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, RecoveryOrchestratorError)


def test_a_mistyped_field_is_named() -> None:
    with pytest.raises(RecoveryValidationError, match="max_retry_attempts"):
        RecoveryPolicy(max_retry_attempts="many")
    with pytest.raises(RecoveryValidationError, match="max_retries"):
        RecoveryPolicy(max_retries=3)  # type: ignore[call-arg]  # wrong on purpose: the refusal is the test


@pytest.mark.parametrize("name", ["", "x" * 201, "has space", "slash/name", "ünïcode"])
def test_bad_service_names_are_rejected(name: str) -> None:
    with pytest.raises(RecoveryValidationError, match="service_name"):
        ServiceRecoveryInput(service_name=name)


def test_good_service_names_pass() -> None:
    for name in ["a", "x" * 200, "policy_service", "api-gw.v2"]:
        assert ServiceRecoveryInput(service_name=name).service_name == name


def test_constitutional_hash_mismatch_names_what_was_given() -> None:
    with pytest.raises(RecoveryConstitutionalError, match="'bad'"):
        validate_constitutional_hash("bad", "recovery scheduling")


def test_exponential_delays_match_the_reference_timeline() -> None:
    policy = RecoveryPolicy()
    assert [base_delay_ms(policy, EXP, n) for n in range(1, 6)] == [
        1000, 2000, 4000, 8000, 16000,
    ]


def test_linear_delays_and_immediate() -> None:
    policy = RecoveryPolicy()
    assert [base_delay_ms(policy, LIN, n) for n in range(1, 6)] == [1000, 2000, 3000, 4000, 5000]
    assert [base_delay_ms(policy, IMM, n) for n in range(1, 6)] == [0] * 5


def test_max_delay_caps_both_backoffs() -> None:
    policy = RecoveryPolicy(initial_delay_ms=1000, max_delay_ms=3000)
    assert [base_delay_ms(policy, EXP, n) for n in range(1, 5)] == [1000, 2000, 3000, 3000]
    assert [base_delay_ms(policy, LIN, n) for n in range(1, 5)] == [1000, 2000, 3000, 3000]


def test_manual_has_no_timer() -> None:
    with pytest.raises(ValueError, match="manual"):
        base_delay_ms(RecoveryPolicy(), RecoveryStrategy.MANUAL, 1)


def test_jitter_stays_in_bounds_and_none_is_exact() -> None:
    rng = random.Random(7)
    full = [apply_jitter(1000, Jitter.FULL, rng) for _ in range(200)]
    equal = [apply_jitter(1000, Jitter.EQUAL, rng) for _ in range(200)]
    assert all(0 <= d <= 1000 for d in full) and len(set(full)) > 50
    assert all(500 <= d <= 1000 for d in equal) and len(set(equal)) > 50
    assert delay_ms(RecoveryPolicy(), EXP, 3, rng) == 4000


def test_any_callable_is_a_health_check_fn_kept_as_given_and_never_serialized() -> None:
    for fn in (checks.always_healthy, lambda: True):
        policy = RecoveryPolicy(health_check_fn=fn)
        assert policy.health_check_fn is fn
        assert policy.health_check is None, "the facade turns it into a check when it sends it"
        assert "health_check_fn" not in policy.model_dump(mode="json")


def test_health_check_dicts_are_accepted() -> None:
    policy = RecoveryPolicy(health_check={"kind": "tcp", "host": "127.0.0.1", "port": 80})
    assert policy.health_check is not None and policy.health_check.kind == "tcp"
    with pytest.raises(RecoveryValidationError, match="port"):
        RecoveryPolicy(health_check={"kind": "tcp", "host": "h", "port": 70000})
    with pytest.raises(RecoveryValidationError, match="kind"):
        RecoveryPolicy(health_check={"kind": "smoke", "url": "x"})


def test_result_to_dict_has_the_original_keys() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    result = RecoveryResult(
        service_name="s", success=True, attempt_number=2, total_attempts=5,
        elapsed_time_ms=12.5, state=RecoveryState.SUCCEEDED, timestamp=now,
    )
    as_dict = result.to_dict()
    assert set(as_dict) == {
        "service_name", "success", "attempt_number", "total_attempts", "elapsed_time_ms",
        "state", "error_message", "health_check_passed", "constitutional_hash", "timestamp",
    }
    assert as_dict["state"] == "succeeded"
    assert as_dict["timestamp"] == "2026-01-02T03:04:05+00:00"


def test_tasks_order_by_priority_then_arrival() -> None:
    now = datetime.now(timezone.utc)
    tasks = [
        RecoveryTask(priority=p, service_name=f"s{i}", scheduled_at=now, sequence=i)
        for i, p in enumerate([5, 1, 3, 1])
    ]
    assert [t.service_name for t in sorted(tasks)] == ["s1", "s3", "s2", "s0"]


def test_a_policy_carried_from_before_the_bounds_still_decodes_but_none_passes_the_door() -> None:
    from workflows.converter import WorkerPayloadConverter
    from workflows.coordinator_models import CoordinatorInput, SetRecoveryPolicyInput
    from workflows.models import decoding_carried_state
    from workflows.payloads import UndecodedInput

    converter = WorkerPayloadConverter()

    def decode(value: object, hint: type) -> object:
        return converter.from_payloads(converter.to_payloads([value]), [hint])[0]

    old = {"max_retry_attempts": 5000, "max_delay_ms": 10 * MAX_DELAY_MS}
    refused = decode({"service_name": "legacy", "policy": old}, SetRecoveryPolicyInput)
    assert isinstance(refused, UndecodedInput)
    assert "max_retry_attempts must be <= 1000" in refused.reason
    state = {"state": {"policies": {"legacy": old}, "config": {"default_policy": old}}}
    carried = decode(state, CoordinatorInput)
    assert isinstance(carried, CoordinatorInput) and carried.state is not None
    assert carried.state.policies["legacy"].max_retry_attempts == 5000
    with pytest.raises(RecoveryValidationError, match="max_retry_attempts must be >= 1"):
        with decoding_carried_state():
            RecoveryPolicy(max_retry_attempts=0)
