"""Secrets and trust (issue 10, item 8).

- A URL with credentials is refused wherever a check enters (model, facade, raw
  coordinator update, workflow input), saying how to pass them instead, without
  repeating the password; non-http(s) schemes are refused.
- Link-local and cloud metadata targets are refused by the worker after DNS
  resolution (and on every redirect hop), unless ``RECOVERY_HEALTH_CHECK_ALLOW``
  lists them; TCP checks follow the same rules.
- Callable checks run only from allow-listed modules, and only functions those
  modules define.
- A secret planted through every path (an env-var header, a credentialed URL, a
  server's error body) is found in no history, query answer, status or log line.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.client import WorkflowFailureError, WorkflowHistory, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.health_check_specs import (
    CallableHealthCheck,
    HealthCheckInput,
    HealthCheckOutcome,
    HttpHealthCheck,
    TcpHealthCheck,
    accepting_recorded_checks,
    hide_url_credentials,
)
from activities.health_checks import (
    ALLOWED_MODULES_ENV,
    HealthCheckActivities,
    allowed_modules_from_env,
)
from activities.target_vetting import ALLOWED_TARGETS_ENV, TargetAllowList, refusal_reason
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.client.orchestrator import RecoveryOrchestrator
from starter.client.recoveries import final_result
from tests.helpers.processes import worker_refusing_to_start
from tests.helpers.recoveries import start_recovery
from tests.helpers.workers import orchestrator_on, running_worker
from tests.reliability.checks_servers import Answer, fault_server
from workflows.constants import CONSTITUTIONAL_HASH, recovery_workflow_id
from workflows.errors import RecoveryValidationError
from workflows.models import RecoveryPolicy, RecoveryStrategy, ServiceRecoveryInput
from workflows.service_recovery import ServiceRecovery

pytestmark = pytest.mark.timeout(30)

PASSWORD = "s3cret-pw-in-url"
CREDENTIALED_URLS = [
    f"http://admin:{PASSWORD}@127.0.0.1:8080/health",
    f"https://admin:{PASSWORD}@example.com/health",
    f"http://{PASSWORD}@[::1]/health",
    f"HTTP://admin:{PASSWORD}@example.com",
    f"http://admin:{PASSWORD}\\@example.com/",
]


async def run_check(
    check: HttpHealthCheck | TcpHealthCheck | CallableHealthCheck,
    activities: HealthCheckActivities | None = None,
) -> HealthCheckOutcome:
    """Run ``run_health_check`` in an activity context, as the worker does."""
    activities = activities or HealthCheckActivities(allowed_targets=TargetAllowList())
    return await ActivityEnvironment().run(
        activities.run_health_check, HealthCheckInput(service_name="svc", check=check)
    )


# --- (a) credentials in URLs, (b) schemes: refused by the model, wherever it decodes ---


@pytest.mark.parametrize("url", CREDENTIALED_URLS)
def test_a_url_with_credentials_is_refused_saying_how_without_the_password(url: str) -> None:
    with pytest.raises(ValidationError) as direct:
        HttpHealthCheck(url=url)
    with pytest.raises(RecoveryValidationError) as in_policy:
        RecoveryPolicy(health_check={"kind": "http", "url": url})
    for message in (str(direct.value), str(in_policy.value)):
        assert PASSWORD not in message and "admin" not in message
        assert "must not carry credentials" in message
        assert "headers_from_env" in message and "RECOVERY_SECRET_" in message


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://x/health", "gopher://x:70/", "javascript:alert(1)", "//x/"]
)
def test_a_scheme_other_than_http_or_https_is_refused(url: str) -> None:
    with pytest.raises(RecoveryValidationError, match="url must start with http:// or https://"):
        RecoveryPolicy(health_check={"kind": "http", "url": url})


def test_a_url_without_a_host_is_refused() -> None:
    with pytest.raises(RecoveryValidationError, match="url has no host"):
        RecoveryPolicy(health_check={"kind": "http", "url": "http:///health"})


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({"Authorization": "AWS_SECRET_ACCESS_KEY"}, "must name an environment variable"),
        ({"Authorization": "RECOVERY_SECRET_lower"}, "must name an environment variable"),
        ({"Bad Header": "RECOVERY_SECRET_X"}, "not a valid HTTP header name"),
        ({"Host": "RECOVERY_SECRET_X"}, "is set by the check itself"),
    ],
)
def test_headers_from_env_may_name_only_prefixed_variables_and_real_headers(
    headers: dict[str, str], fragment: str
) -> None:
    check = {"kind": "http", "url": "http://svc/health", "headers_from_env": headers}
    with pytest.raises(RecoveryValidationError, match=fragment):
        RecoveryPolicy(health_check=check)


def test_checks_without_headers_travel_exactly_as_before() -> None:
    check = HttpHealthCheck(url="http://svc/health")
    assert check.model_dump(mode="json") == {
        "timeout_ms": 2000, "kind": "http", "url": "http://svc/health", "expected_status": [200]
    }
    with_header = HttpHealthCheck(
        url="http://svc/health", headers_from_env={"Authorization": "RECOVERY_SECRET_SVC"}
    )
    assert with_header.model_dump(mode="json")["headers_from_env"] == {
        "Authorization": "RECOVERY_SECRET_SVC"
    }


async def test_a_recorded_credentialed_check_still_decodes_but_the_worker_refuses_it() -> None:
    with accepting_recorded_checks():
        recorded = HttpHealthCheck(url=CREDENTIALED_URLS[0])
    with pytest.raises(ApplicationError) as refused:
        await run_check(recorded)
    assert refused.value.type == "HealthCheckNotAllowed" and refused.value.non_retryable
    assert PASSWORD not in refused.value.message and "http://***@127.0.0.1" in refused.value.message


def test_hide_url_credentials_masks_every_url_in_a_text() -> None:
    text = f"got 'http://admin:{PASSWORD}@h/x' and 'https://{PASSWORD}@g'; http://ok/p@q"
    assert hide_url_credentials(text) == "got 'http://***@h/x' and 'https://***@g'; http://ok/p@q"


# --- (a) headers read from the worker's environment ---


async def test_a_header_comes_from_the_named_variable_and_stays_with_its_origin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = f"tok-{uuid.uuid4().hex}"
    monkeypatch.setenv("RECOVERY_SECRET_SVC", f"Bearer {token}")
    async with fault_server(Answer()) as elsewhere, fault_server() as origin:
        origin.script = [Answer(status=302, location=elsewhere.url("/moved")), Answer()]
        check = HttpHealthCheck(
            url=origin.url(), headers_from_env={"Authorization": "RECOVERY_SECRET_SVC"}
        )
        outcome = await run_check(check)
    assert outcome.passed, outcome.detail
    assert origin.requests[0].headers["authorization"] == f"Bearer {token}"
    assert "authorization" not in elsewhere.requests[0].headers, "never sent to another origin"


@pytest.mark.parametrize(
    ("value", "problem"),
    [(None, "which is not set"), ("", "which is empty"), ("Bearer x\r\nX-Evil: 1", "cannot carry")],
)
async def test_an_unusable_variable_fails_the_attempt_naming_it_never_its_value(
    monkeypatch: pytest.MonkeyPatch, value: str | None, problem: str
) -> None:
    if value is None:
        monkeypatch.delenv("RECOVERY_SECRET_MISSING", raising=False)
    else:
        monkeypatch.setenv("RECOVERY_SECRET_MISSING", value)
    check = HttpHealthCheck(
        url="http://127.0.0.1:9/", headers_from_env={"X-Api-Key": "RECOVERY_SECRET_MISSING"}
    )
    with pytest.raises(ApplicationError) as failed:
        await run_check(check)
    assert failed.value.type == "HealthCheckSecretMissing" and failed.value.non_retryable
    assert "RECOVERY_SECRET_MISSING" in failed.value.message and problem in failed.value.message
    assert "X-Evil" not in failed.value.message


# --- (c) link-local and metadata targets: refused at the worker unless allowed ---


@pytest.mark.parametrize(
    ("check", "reason"),
    [
        (HttpHealthCheck(url="http://169.254.169.254/latest/meta-data/"), "it is the cloud metadata"),
        (HttpHealthCheck(url="http://0xa9fea9fe/"), "it resolves to 169.254.169.254, the cloud"),
        (HttpHealthCheck(url="http://2852039166/"), "it resolves to 169.254.169.254, the cloud"),
        (HttpHealthCheck(url="http://[::ffff:169.254.169.254]/"), "the cloud metadata address"),
        (HttpHealthCheck(url="http://[fd00:ec2::254]/"), "AWS's IPv6 metadata address"),
        (HttpHealthCheck(url="http://metadata.google.internal/"), "a cloud metadata service"),
        (HttpHealthCheck(url="http://[fe80::1]:8080/"), "a link-local address"),
        (TcpHealthCheck(host="169.254.10.1", port=22), "a link-local address"),
        (TcpHealthCheck(host="2852039166", port=80), "it resolves to 169.254.169.254"),
        (TcpHealthCheck(host="0251.0376.0251.0376", port=80), "it resolves to 169.254.169.254"),
        (TcpHealthCheck(host="100.100.100.200", port=80), "Alibaba Cloud's metadata address"),
    ],
    ids=lambda value: value if isinstance(value, str) else value.target,
)
async def test_link_local_and_metadata_targets_are_refused_after_resolution(
    check: HttpHealthCheck | TcpHealthCheck, reason: str
) -> None:
    with pytest.raises(ApplicationError) as refused:
        await run_check(check)
    assert refused.value.type == "HealthCheckNotAllowed" and refused.value.non_retryable
    assert reason in refused.value.message and ALLOWED_TARGETS_ENV in refused.value.message


async def test_a_redirect_to_the_metadata_address_is_refused() -> None:
    async with fault_server(Answer(status=302, location="http://169.254.169.254/")) as server:
        with pytest.raises(ApplicationError, match="'169.254.169.254' refused"):
            await run_check(HttpHealthCheck(url=server.url()))


@pytest.mark.timeout(60)
async def test_a_refused_target_fails_each_attempt_and_the_recovery_goes_on(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    policy = RecoveryPolicy(
        max_retry_attempts=2, health_check=TcpHealthCheck(host="169.254.169.254", port=80)
    )
    async with running_worker(time_env.client, store, task_queue):
        handle = await start_recovery(
            time_env.client, task_queue, ServiceRecoveryInput(service_name=service, policy=policy)
        )
        result = await final_result(handle)
        attempts = await handle.query(ServiceRecovery.history)
    assert not result.success and result.attempt_number == 2
    for attempt in attempts:
        assert "'169.254.169.254' refused: it is the cloud metadata address" in (attempt.error or "")
        assert ALLOWED_TARGETS_ENV in (attempt.error or "")


async def test_an_operator_allows_a_target_with_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    # fe80::1 without an interface cannot be reached: allowed, it fails on the wire at once.
    monkeypatch.setenv(ALLOWED_TARGETS_ENV, " fe80::/10 , metadata.internal.example,10.1.2.3")
    outcome = await run_check(TcpHealthCheck(host="fe80::1", port=9), HealthCheckActivities())
    assert not outcome.passed and outcome.detail.startswith("TCP fe80::1:9 refused: ")


def test_the_allow_list_format_and_its_errors() -> None:
    allow = TargetAllowList.parse("Metadata.Google.Internal., 169.254.170.2,fd00:ec2::/32,,")
    assert allow.allows_host("metadata.google.internal")
    assert allow.networks[0].num_addresses == 1 and allow.networks[1].prefixlen == 32
    for bad in ("10.0.0.0/33", "*", "http://x", "a b"):
        with pytest.raises(ValueError, match=ALLOWED_TARGETS_ENV):
            TargetAllowList.parse(bad)
    # 10.1.2.3/8 would silently allow all of 10.0.0.0/8.
    with pytest.raises(ValueError, match="host bits set"):
        TargetAllowList.parse("10.1.2.3/8")
    # Names a URL parser reads as addresses (0x7f.1 is 127.0.0.1) are not names.
    for shorthand in ("0x7f.1", "0X7F000001", "internal.10"):
        with pytest.raises(ValueError, match="shorthand"):
            TargetAllowList.parse(shorthand)


async def test_a_bad_allow_list_stops_the_worker_before_it_connects(tmp_path: Path) -> None:
    """Exit 2 naming the variable, at once: not exit 1 after waiting on a server."""
    settings = {ALLOWED_TARGETS_ENV: "169.254.169.254,http://metadata"}
    last = await worker_refusing_to_start(settings, tmp_path)
    assert f"cannot start: {ALLOWED_TARGETS_ENV}: 'http://metadata' is not a host name" in last


def test_which_addresses_the_rules_refuse() -> None:
    import ipaddress

    refused = ["169.254.0.1", "fe80::abcd", "::ffff:169.254.1.1", "64:ff9b::a9fe:a9fe",
               "168.63.129.16", "fd00:c1::a9fe:a9fe"]
    allowed = ["127.0.0.1", "::1", "10.0.0.1", "192.168.1.1", "8.8.8.8", "fd00::1"]
    assert all(refusal_reason(ipaddress.ip_address(a)) for a in refused)
    assert not any(refusal_reason(ipaddress.ip_address(a)) for a in allowed)


# --- (d) callables: allow-listed modules, functions they define ---


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ("tests.reliability.checks_callables:getcwd", "is not a function defined in"),
        ("os:getcwd", f"is not in the worker's {ALLOWED_MODULES_ENV}"),
        ("tests.reliability:checks_callables", "is not in the worker's"),
    ],
)
async def test_a_callable_runs_only_if_its_module_is_listed_and_defines_it(
    ref: str, fragment: str
) -> None:
    activities = HealthCheckActivities(
        ["tests.reliability.checks_callables"], allowed_targets=TargetAllowList()
    )
    ok = await run_check(CallableHealthCheck(ref="tests.reliability.checks_callables:healthy"), activities)
    assert ok.passed
    with pytest.raises(ApplicationError, match=fragment) as refused:
        await run_check(CallableHealthCheck(ref=ref), activities)
    assert refused.value.type == "HealthCheckNotAllowed"


def test_the_module_allow_list_is_read_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOWED_MODULES_ENV, " a.b , c,, ")
    assert allowed_modules_from_env() == {"a.b", "c"}


# --- (e) a secret planted through every path is found nowhere ---


class Planted:
    """Three secrets of this test's own, and where each went in."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex
        self.header = f"hdr-{tag}"  # the value of an env-var header
        self.body = f"body-{tag}"  # what the service's error answer says
        self.password = f"pw-{tag}"  # in a credentialed URL, refused

    def found_in(self, places: dict[str, str]) -> list[str]:
        """Return ``place: secret`` for every secret some place holds."""
        return [
            f"{place}: {secret}"
            for place, text in places.items()
            for secret in (self.header, self.body, self.password)
            if secret in text
        ]


async def refused_doors(
    env: WorkflowEnvironment, orch: RecoveryOrchestrator, planted: Planted, url: str, service: str
) -> list[str]:
    """Send a credentialed URL through the facade, a raw update and a workflow start.

    Returns each refusal's message (the caller checks none holds the password).
    """
    secret_url = url.replace("http://", f"http://admin:{planted.password}@")
    check = {"kind": "http", "url": secret_url}
    messages = []
    with pytest.raises(RecoveryValidationError) as facade:
        await orch.schedule_recovery(service, policy=RecoveryPolicy(health_check=check))
    messages.append(str(facade.value))
    coordinator = env.client.get_workflow_handle(orch.coordinator_workflow_id)
    with pytest.raises(WorkflowUpdateFailedError) as update:
        await coordinator.execute_update(
            "schedule_recovery",
            {"service_name": service, "policy": {"health_check": check},
             "constitutional_hash": CONSTITUTIONAL_HASH},
        )
    messages.append(str(update.value.cause))
    direct = await env.client.start_workflow(
        "ServiceRecovery",
        {"service_name": f"{service}-direct", "policy": {"health_check": check}},
        id=recovery_workflow_id(f"{service}-direct"),
        task_queue=orch.task_queue,
    )
    with pytest.raises(WorkflowFailureError) as started:
        await direct.result()
    messages.append(str(started.value.cause))
    messages.append(json.dumps((await direct.query(ServiceRecovery.status)).model_dump(mode="json")))
    return messages


def readable(history: WorkflowHistory, *, skip_input: bool = False) -> str:
    """Return every event of a history as text, payloads shown as their bytes.

    Not ``to_json()``: that writes payloads in base64, where no search finds a secret.
    """
    return "\n".join(
        str(event) for event in history.events
        if not (skip_input and event.HasField("workflow_execution_started_event_attributes"))
    )


async def recorded_everywhere(
    env: WorkflowEnvironment, orch: RecoveryOrchestrator, service: str
) -> dict[str, str]:
    """Return every place a secret could leak to, as text, by name."""
    recovery = env.client.get_workflow_handle(recovery_workflow_id(service))
    direct = env.client.get_workflow_handle(recovery_workflow_id(f"{service}-direct"))
    status = await recovery.query(ServiceRecovery.status)
    attempts = await recovery.query(ServiceRecovery.history)
    return {
        "recovery history": readable(await recovery.fetch_history()),
        "coordinator history": readable(
            await env.client.get_workflow_handle(orch.coordinator_workflow_id).fetch_history()
        ),
        # Its input holds what the caller sent; what the workflow recorded besides must not.
        "refused recovery's history": readable(await direct.fetch_history(), skip_input=True),
        "status query": status.model_dump_json(),
        "history query": json.dumps([a.model_dump(mode="json") for a in attempts]),
        "coordinator status": json.dumps(await orch.get_recovery_status(), default=str),
        "policy query": (await orch.get_recovery_policy(service)).model_dump_json(),
    }


@pytest.mark.timeout(60)
async def test_a_secret_planted_through_every_path_is_found_nowhere(
    dev_env: WorkflowEnvironment,
    store: SQLiteBreakerStore,
    task_queue: str,
    service: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    planted = Planted()
    monkeypatch.setenv("RECOVERY_SECRET_PLANTED", f"Bearer {planted.header}")
    error_answer = Answer(status=503, body=f"db down; token={planted.body}".encode())
    async with fault_server(error_answer, Answer()) as server:
        check = HttpHealthCheck(
            url=server.url(), headers_from_env={"Authorization": "RECOVERY_SECRET_PLANTED"}
        )
        policy = RecoveryPolicy(max_retry_attempts=2, initial_delay_ms=10, health_check=check)
        async with orchestrator_on(dev_env, store, task_queue) as orch:
            messages = await refused_doors(dev_env, orch, planted, server.url(), service)
            await orch.schedule_recovery(service, RecoveryStrategy.IMMEDIATE, policy=policy)
            result = await orch.execute_recovery(service)
            places = await recorded_everywhere(dev_env, orch, service)
    assert result.success and result.attempt_number == 2, result
    assert [r.headers["authorization"] for r in server.requests] == [f"Bearer {planted.header}"] * 2
    assert "RECOVERY_SECRET_PLANTED" in places["recovery history"], "the name travels, not the value"
    assert "answered 503" in places["history query"], "the error answer was recorded, not its body"
    assert all("must not carry credentials" in m for m in messages[:3]), messages
    places |= {f"refusal {n}": m for n, m in enumerate(messages)}
    places["worker and client logs"] = caplog.text
    assert planted.found_in(places) == []
