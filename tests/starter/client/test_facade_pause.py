"""The facade's ``pause_service`` / ``resume_service``: a round trip, and bad input named."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from starter.client.orchestrator import RecoveryOrchestrator
from workflows.errors import RecoveryConstitutionalError, RecoveryValidationError

pytestmark = pytest.mark.timeout(120)


async def test_pause_shows_in_the_status_until_resumed(
    orchestrator: RecoveryOrchestrator, service: str
) -> None:
    before = datetime.now(timezone.utc)
    pause = await orchestrator.pause_service(service, timedelta(hours=2), "db migration")
    assert pause.service_name == service and pause.reason == "db migration"
    assert before + timedelta(hours=2) <= pause.until <= before + timedelta(hours=2, minutes=1)
    # The facade's own write shows at once, whatever its status cache holds.
    status = await orchestrator.get_recovery_status()
    assert status["paused"][service] == {"until": pause.until.isoformat(), "reason": "db migration"}

    resumed = await orchestrator.resume_service(service)
    assert resumed.resumed is True and resumed.lifted == ["paused"]
    assert service not in (await orchestrator.get_recovery_status()).get("paused", {})
    again = await orchestrator.resume_service(service)
    assert again.resumed is False and again.lifted == []


async def test_pause_takes_seconds_and_defaults_to_a_day(
    orchestrator: RecoveryOrchestrator, service: str
) -> None:
    before = datetime.now(timezone.utc)
    pause = await orchestrator.pause_service(service)
    assert pause.reason == "paused by operator"
    assert before + timedelta(days=1) <= pause.until <= before + timedelta(days=1, minutes=1)
    pause = await orchestrator.pause_service(service, 90)
    assert pause.until <= datetime.now(timezone.utc) + timedelta(seconds=91)
    await orchestrator.resume_service(service)


@pytest.mark.parametrize(
    "duration",
    [
        0, -1, 0.5, timedelta(0), timedelta(seconds=-5), timedelta(days=31), 30 * 86_400 + 1,
        math.nan, math.inf, 10**400, True, "2h", [60],
    ],
    ids=repr,
)
async def test_a_bad_duration_is_named_before_anything_is_sent(duration: object) -> None:
    orchestrator = RecoveryOrchestrator(client=None)  # never connects: refused first
    with pytest.raises(RecoveryValidationError, match="duration"):
        await orchestrator.pause_service("api", duration)  # type: ignore[arg-type]  # wrong on purpose: the refusal is the test


async def test_a_bad_name_or_reason_is_named_before_anything_is_sent() -> None:
    orchestrator = RecoveryOrchestrator(client=None)
    with pytest.raises(RecoveryValidationError, match="service_name"):
        await orchestrator.pause_service("bad name")
    with pytest.raises(RecoveryValidationError, match="reason"):
        await orchestrator.pause_service("api", 60, 42)  # type: ignore[arg-type]  # wrong on purpose: the refusal is the test
    with pytest.raises(RecoveryValidationError, match="reason"):
        await orchestrator.pause_service("api", 60, "x" * 100_000)
    with pytest.raises(RecoveryValidationError, match="reason"):
        await orchestrator.pause_service("api", 60, " ")
    with pytest.raises(RecoveryValidationError, match="service_name"):
        await orchestrator.resume_service("bad name")
    with pytest.raises(RecoveryConstitutionalError):
        await RecoveryOrchestrator(constitutional_hash="wrong").pause_service("api")
