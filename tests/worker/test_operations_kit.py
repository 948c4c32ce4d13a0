"""The operations kit: Prometheus rules, the Grafana dashboard, Alertmanager, the fleet gauges.

The rules and configurations are checked by the real tools (Debian's ``prometheus`` for
``promtool``, ``prometheus-alertmanager`` for ``amtool``); every metric a rule or a panel
names must be one the workers export; the held-back and paused gauges are scraped from a
real worker's endpoint after a real pause and cancel.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from starter.client.connection import connect, metrics_runtime
from starter.client.fleet_metrics import (
    AWAITING_OPERATOR,
    HELD_BACK,
    HOLD_CAUSES,
    PAUSED,
    count_holds,
    publish_fleet_gauges,
)
from starter.client.orchestrator import RecoveryOrchestrator
from tests.helpers.paths import REPO
from tests.helpers.prometheus import scrape, value
from tests.helpers.servers import free_port
from tests.helpers.waiting import eventually
from worker import build_worker
from workflows import metrics as workflow_metrics
from workflows.carried_state import AttemptLog, CoordinatorState, FailureStreak, HeldBack, Pause
from workflows.ledger import storm_guard
from workflows.ledger.view import status
from workflows.models import RecoveryPolicy, RecoveryStrategy

RULES = REPO / "deploy" / "prometheus" / "rules.yml"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
RULES_TESTS = REPO / "tests" / "prometheus" / "rules_test.yml"
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "recovery-orchestrator.json"

# The series the workers export, as Prometheus names them (counters gain ``_total``, a
# histogram its ``_bucket``/``_sum``/``_count``), and Prometheus's own ``up``.
EXPORTED = {
    f"{workflow_metrics.STARTED}_total",
    f"{workflow_metrics.ENDED}_total",
    f"{workflow_metrics.ATTEMPTS}_total",
    *(f"{workflow_metrics.BACKOFF_SECONDS}_{part}" for part in ("bucket", "sum", "count")),
    AWAITING_OPERATOR,
    HELD_BACK,
    PAUSED,
    "up",
}
# The alerts issue 21 asks for, by what they watch.
WANTED_ALERTS = {
    "RecoveryFailed": "recovery_ended_total",
    "RecoveryAwaitingOperator": AWAITING_OPERATOR,
    "RecoveryStormGuardHolding": HELD_BACK,
    "RecoveryWorkerDown": "up",
}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                "offset", "and", "or", "unless", "inf", "nan"}
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)

pytestmark = pytest.mark.timeout(90)


def tool(name: str, package: str) -> str:
    binary = shutil.which(name)
    if binary is None:
        pytest.skip(f"{name} (Debian package {package}) is not installed: `make test` installs it")
    return binary


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)


def metric_names(expression: str) -> set[str]:
    """Return the metric names a PromQL expression reads.

    Strings, label matchers, ranges and grouping label lists are cut first; what is left
    is names, function names (followed by ``(``), keywords and numbers.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expression)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        if match.group(2) is None and match.group(1).lower() not in PROMQL_WORDS:
            names.add(match.group(1))
    return names


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    """Return every panel's PromQL, and the series each ``label_values(series, label)`` reads."""
    board = json.loads(DASHBOARD.read_text())
    found = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["query"])
            assert match, variable["query"]
            found.append(match.group(1))
    return found


def test_metric_names_are_read_from_promql() -> None:
    assert metric_names('sum by (le) (rate(a_bucket{x="y"}[5m])) / on(i) b offset 1h > 0.9') == {"a_bucket", "b"}
    assert metric_names("absent(up{job=\"w\"} == 1)") == {"up"}


def test_promtool_checks_the_rules_and_the_prometheus_configuration() -> None:
    promtool = tool("promtool", "prometheus")
    checked = run(promtool, "check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout
    config = run(promtool, "check", "config", str(PROMETHEUS_CONFIG))
    assert config.returncode == 0, config.stdout + config.stderr


def test_the_rules_fire_as_their_unit_tests_say() -> None:
    promtool = tool("promtool", "prometheus")
    result = run(promtool, "test", "rules", str(RULES_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_alerts_asked_for_exist_and_read_only_exported_metrics() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    for alert, metric in WANTED_ALERTS.items():
        assert metric in metric_names(by_name[alert]["expr"]), alert
    for rule in rules():
        assert metric_names(rule["expr"]) <= EXPORTED, (rule["alert"], metric_names(rule["expr"]) - EXPORTED)
        assert rule["labels"]["component"] == "recovery-orchestrator", rule["alert"]
        # A `service` label would make the alert a recovery request at the receiver.
        assert "service" not in rule["labels"], rule["alert"]


def test_the_dashboard_reads_only_exported_metrics() -> None:
    expressions = dashboard_expressions()
    assert len(expressions) >= 10
    read = set()
    for expression in expressions:
        names = metric_names(expression)
        assert names and names <= EXPORTED, (expression, names - EXPORTED)
        read |= names
    # Every recovery metric has a panel.
    assert read >= EXPORTED - {f"{workflow_metrics.BACKOFF_SECONDS}_sum", f"{workflow_metrics.BACKOFF_SECONDS}_count"}


def test_alertmanager_accepts_its_configuration() -> None:
    amtool = tool("amtool", "prometheus-alertmanager")
    result = run(amtool, "check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    route = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())["route"]
    assert {'component="recovery-orchestrator"'} <= {m for r in route["routes"] for m in r["matchers"]}


def test_the_status_holds_are_counted_by_cause() -> None:
    state = CoordinatorState(
        attempt_logs={"flaky": AttemptLog(budget=2, started=[NOW - timedelta(minutes=5)] * 2)},
        failure_streaks={"broken": FailureStreak(failures=2, until=NOW + timedelta(minutes=10))},
        operator_cancels={"stopped": NOW - timedelta(minutes=1)},
        paused={"quiet": Pause(until=NOW + timedelta(hours=1), reason="db failover")},
    )
    held = storm_guard.spent_budget(state.attempt_logs["flaky"], RecoveryPolicy(max_attempts_per_hour=2), NOW)
    assert isinstance(held, HeldBack)
    state.held_back["flaky"] = held
    assert count_holds(status(state, NOW)) == (
        {"storm_guard": 1, "cool_down": 1, "operator_cancel": 1}, 1
    )
    assert count_holds(None) == (dict.fromkeys(HOLD_CAUSES, 0), 0)


async def test_the_worker_endpoint_shows_pauses_and_holds(
    dev_env: WorkflowEnvironment, store: Any, task_queue: str, service: str
) -> None:
    address = f"127.0.0.1:{free_port()}"
    runtime = metrics_runtime(address)
    client = await connect(dev_env.client.service_client.config.target_host, runtime=runtime)
    coordinator_id = f"coordinator-{task_queue}"
    stop = asyncio.Event()
    gauges = asyncio.create_task(
        publish_fleet_gauges(
            client, runtime, stop, interval=timedelta(milliseconds=300), coordinator_id=coordinator_id
        )
    )
    orchestrator = RecoveryOrchestrator(
        client=client, task_queue=task_queue, coordinator_workflow_id=coordinator_id
    )
    try:
        async with build_worker(client, store, task_queue=task_queue):
            await orchestrator.start()
            await orchestrator.pause_service(f"{service}-paused", reason="maintenance")
            await orchestrator.schedule_recovery(f"{service}-cancelled", RecoveryStrategy.MANUAL)
            await orchestrator.cancel_recovery(f"{service}-cancelled")
            metrics = await eventually(
                lambda: asyncio.to_thread(scrape, address),
                lambda text: value(text, PAUSED) == 1
                and value(text, HELD_BACK, cause="operator_cancel") == 1,
            )
            await orchestrator.stop()
    finally:
        stop.set()
        await gauges
    assert value(metrics, HELD_BACK, cause="storm_guard") == 0
    assert value(metrics, HELD_BACK, cause="cool_down") == 0
    assert value(metrics, PAUSED, namespace=client.namespace) == 1
