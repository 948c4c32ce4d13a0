"""Health-check faults (issue 10, item 5), each against a real server on loopback.

A server that accepts and never answers, one that resets the connection, one that
answers just inside and just outside the timeout, a name under ``.invalid``, a
redirect loop, a 10 MB body: each check fails with a message naming the cause,
within its timeout, and the recovery goes on to its next attempt.

The activity is run as the worker runs it (``ActivityEnvironment`` gives it an
activity context: heartbeats, logger); one recovery on the time-skipping server
meets a different fault on each attempt.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.health_check_specs import (
    HealthCheckInput,
    HealthCheckOutcome,
    HttpHealthCheck,
    TcpHealthCheck,
)
from activities.health_checks import HEARTBEAT_INTERVAL_S, HealthCheckActivities
from activities.http_checks import MAX_BODY_BYTES, MAX_REDIRECTS
from activities.target_vetting import TargetAllowList
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.client.recoveries import final_result
from tests.helpers.recoveries import start_recovery
from tests.helpers.workers import running_worker
from tests.reliability.checks_servers import (
    BIG_BODY_CHUNKED,
    BIG_BODY_DECLARED,
    HANG,
    REDIRECT_LOOP,
    RESET,
    Answer,
    Behaviour,
    fault_server,
)
from tests.helpers.servers import free_port
from tests.reliability.checks_tls import localhost_certificate
from workflows.models import RecoveryPolicy, RecoveryState, ServiceRecoveryInput
from workflows.service_recovery import ServiceRecovery

TIMEOUT_MS = 1000
# Scheduling slack on a busy 2-core machine: a check must end by its timeout plus this.
MARGIN_S = 0.75

pytestmark = pytest.mark.timeout(30)


async def run_check(
    check: HttpHealthCheck | TcpHealthCheck, heartbeats: list[Any] | None = None
) -> tuple[HealthCheckOutcome, float]:
    """Run ``run_health_check`` as a worker would; return its outcome and how long it took."""
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: (heartbeats if heartbeats is not None else []).append(
        details
    )
    activities = HealthCheckActivities(allowed_targets=TargetAllowList())
    started = time.monotonic()
    outcome = await env.run(
        activities.run_health_check, HealthCheckInput(service_name="svc", check=check)
    )
    return outcome, time.monotonic() - started


def within_timeout(elapsed: float, timeout_ms: int = TIMEOUT_MS) -> bool:
    return elapsed <= timeout_ms / 1000 + MARGIN_S


@pytest.mark.parametrize(
    ("behaviour", "cause"),
    [
        pytest.param(HANG, "timed out after 1000 ms (waiting for the answer", id="never-answers"),
        pytest.param(RESET, "connection reset by the server", id="resets"),
        pytest.param(Answer(delay=1.4), "timed out after 1000 ms", id="just-outside-timeout"),
        pytest.param(REDIRECT_LOOP, f"too many redirects (more than {MAX_REDIRECTS})", id="loop"),
        pytest.param(BIG_BODY_DECLARED, "body too large: 10485760 bytes announced", id="10MB"),
        pytest.param(BIG_BODY_CHUNKED, f"body too large: more than {MAX_BODY_BYTES}", id="chunked"),
    ],
)
async def test_each_http_fault_fails_in_time_naming_its_cause(
    behaviour: Behaviour, cause: str
) -> None:
    async with fault_server(behaviour) as server:
        outcome, elapsed = await run_check(HttpHealthCheck(url=server.url(), timeout_ms=TIMEOUT_MS))
    assert not outcome.passed
    assert cause in outcome.detail, outcome.detail
    assert within_timeout(elapsed), f"took {elapsed:.2f}s"
    assert len(server.requests) <= MAX_REDIRECTS + 1


async def test_an_answer_just_inside_the_timeout_passes() -> None:
    async with fault_server(Answer(delay=0.6)) as server:
        outcome, elapsed = await run_check(HttpHealthCheck(url=server.url(), timeout_ms=TIMEOUT_MS))
    assert outcome.passed, outcome.detail
    assert outcome.detail == f"GET {server.url()} answered 200"
    assert 0.6 <= elapsed and within_timeout(elapsed)


@pytest.mark.parametrize(
    "check",
    [
        HttpHealthCheck(url="http://health.invalid/health", timeout_ms=TIMEOUT_MS),
        TcpHealthCheck(host="db.invalid", port=5432, timeout_ms=TIMEOUT_MS),
    ],
    ids=["http", "tcp"],
)
async def test_a_name_under_invalid_fails_as_not_resolved(
    check: HttpHealthCheck | TcpHealthCheck,
) -> None:
    outcome, elapsed = await run_check(check)
    assert not outcome.passed
    assert "DNS name" in outcome.detail and "invalid' not resolved" in outcome.detail
    assert within_timeout(elapsed)


async def test_a_closed_port_fails_as_refused() -> None:
    port = free_port()
    http, _ = await run_check(HttpHealthCheck(url=f"http://127.0.0.1:{port}/", timeout_ms=TIMEOUT_MS))
    tcp, _ = await run_check(TcpHealthCheck(host="127.0.0.1", port=port, timeout_ms=TIMEOUT_MS))
    assert http.detail.endswith(": connection refused") and "refused" in tcp.detail


async def test_a_url_the_http_client_cannot_parse_fails_the_check_naming_it() -> None:
    outcome, _ = await run_check(HttpHealthCheck(url="http://0251.0376.0251.0376/", timeout_ms=500))
    assert not outcome.passed and "invalid URL (Invalid IPv4 address" in outcome.detail


async def test_redirects_are_followed_a_bounded_number_of_times() -> None:
    script: list[Behaviour] = [Answer(status=302, location="/moved"), Answer(status=200)]
    async with fault_server(*script) as server:
        followed, _ = await run_check(HttpHealthCheck(url=server.url(), timeout_ms=TIMEOUT_MS))
    async with fault_server(*script) as server:
        expected = HttpHealthCheck(url=server.url(), expected_status=[302], timeout_ms=TIMEOUT_MS)
        kept, _ = await run_check(expected)
        assert [r.path for r in server.requests] == ["/health"], "a 302 it expects is its answer"
    assert followed.passed and followed.detail.endswith("answered 200 after 1 redirect(s)")
    assert kept.passed and kept.detail.endswith("answered 302")


async def test_a_redirect_to_another_scheme_is_not_followed() -> None:
    async with fault_server(Answer(status=302, location="file:///etc/passwd")) as server:
        outcome, _ = await run_check(HttpHealthCheck(url=server.url(), timeout_ms=TIMEOUT_MS))
    assert not outcome.passed and "redirected to a 'file' URL" in outcome.detail


async def test_https_goes_to_the_vetted_address_and_still_checks_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certificate = localhost_certificate(tmp_path)
    async with fault_server(Answer(), tls=certificate.server_context()) as server:
        untrusted, _ = await run_check(HttpHealthCheck(url=f"https://localhost:{server.port}/"))
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert))  # a private CA, as documented
        by_name, _ = await run_check(HttpHealthCheck(url=f"https://localhost:{server.port}/"))
        by_address, _ = await run_check(HttpHealthCheck(url=f"https://127.0.0.1:{server.port}/"))
    assert "TLS certificate not accepted: self-signed certificate" in untrusted.detail
    assert by_name.passed, by_name.detail
    assert "TLS certificate not accepted: IP address mismatch" in by_address.detail


@pytest.mark.timeout(15)
async def test_a_long_check_heartbeats_while_it_waits() -> None:
    heartbeats: list[Any] = []
    async with fault_server(HANG) as server:
        check = HttpHealthCheck(url=server.url(), timeout_ms=2600)
        outcome, elapsed = await run_check(check, heartbeats)
    assert not outcome.passed and within_timeout(elapsed, 2600)
    assert len(heartbeats) >= int(2.6 / HEARTBEAT_INTERVAL_S) - 1
    assert heartbeats[-1] == ("waiting for the answer",), "the phase travels with the heartbeat"


@pytest.mark.timeout(60)
async def test_a_recovery_meets_a_fault_per_attempt_and_goes_on_to_the_next(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    faults: list[Behaviour] = [HANG, RESET, REDIRECT_LOOP, BIG_BODY_CHUNKED, Answer(status=200)]
    causes = ["timed out after 1000 ms", "connection reset", "too many redirects", "body too large"]
    async with fault_server(*faults) as server:
        policy = RecoveryPolicy(
            max_retry_attempts=len(faults),
            health_check=HttpHealthCheck(url=server.url(), timeout_ms=TIMEOUT_MS),
        )
        async with running_worker(time_env.client, store, task_queue):
            handle = await start_recovery(
                time_env.client, task_queue, ServiceRecoveryInput(service_name=service, policy=policy)
            )
            result = await final_result(handle)
            attempts = await handle.query(ServiceRecovery.history)
    assert result.state is RecoveryState.SUCCEEDED and result.attempt_number == len(faults)
    for attempt, cause in zip(attempts, causes):
        assert attempt.result == "failure" and cause in (attempt.error or ""), attempt.error
        assert attempt.health_check is not None
        assert attempt.health_check.duration_ms <= TIMEOUT_MS + MARGIN_S * 1000
    assert attempts[-1].result == "success"
    assert server.health_requests == len(faults), "one check per attempt, none repeated"
