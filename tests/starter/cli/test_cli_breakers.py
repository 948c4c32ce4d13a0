"""``recoveryctl breakers`` / ``watch-breakers``, and a worker refusing a bad services file,
run as processes (the dev server for the watch, real SQLite and Redis stores)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from recovery_breakers.store import BreakerState
from recovery_breakers.stores import open_store
from starter.cli import render
from starter.cli.views import Status
from starter.client.orchestrator import RecoveryOrchestrator
from starter.client.watch_control import describe_watch, ensure_watch
from tests.helpers.policies import blocking_policy
from tests.helpers.servers import free_port
from tests.helpers.waiting import eventually
from tests.helpers.workers import running_worker
from workflows.circuit_watch_models import CIRCUIT_WATCH_WORKFLOW_ID, ServiceSettings, WatchInput

pytestmark = pytest.mark.timeout(60)
RECOVERYCTL = str(Path(sys.executable).parent / "recoveryctl")


async def run(*argv: str, **env: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=dict(os.environ, **env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=45)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_breakers_lists_state_counters_and_time_open(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path}/b.db" if kind == "sqlite" else request.getfixturevalue("redis_url")
    store = open_store(url)
    store.set_state("payments", BreakerState.OPEN)
    store.set_state("db", BreakerState.CLOSED)
    store.close()

    # No Temporal server: the listing stands on its own (no WATCH column).
    nowhere = f"127.0.0.1:{free_port()}"
    code, out, err = await run(
        RECOVERYCTL, "breakers", "--json", RECOVERY_CIRCUIT_STORE=url, TEMPORAL_ADDRESS=nowhere
    )
    assert code == 0, err
    listed = {b["service_name"]: b for b in json.loads(out)["breakers"]}
    assert listed["payments"]["state"] == "open" and listed["db"]["state"] == "closed"
    assert 0 <= listed["payments"]["open_for_seconds"] < 30
    assert listed["db"]["open_for_seconds"] is None

    code, out, err = await run(RECOVERYCTL, "breakers", "--store", url, TEMPORAL_ADDRESS=nowhere)
    assert code == 0, err
    [header, *rows] = out.splitlines()[2:]
    assert header.split() == ["SERVICE", "STATE", "FAILURES", "SUCCESSES", "OPEN", "FOR", "LAST", "OPENED"]
    assert rows[0].split()[:2] == ["db", "closed"] and rows[1].split()[:2] == ["payments", "open"]


async def test_breakers_says_in_one_line_when_the_store_is_down_or_unknown() -> None:
    code, out, err = await run(RECOVERYCTL, "breakers", "--store", f"redis://127.0.0.1:{free_port()}/0")
    assert (code, out) == (3, "")
    assert err.startswith("recoveryctl: error: cannot reach the circuit store redis://")
    assert len(err.strip().splitlines()) == 1
    code, _, err = await run(RECOVERYCTL, "breakers", "--store", "mysql://x")
    assert code == 2 and "unsupported circuit store" in err


async def end_the_pinned_watch(client: Client) -> None:
    """End a ``recovery-circuit-watch`` another test left (it may poll another task queue)."""
    try:
        await client.get_workflow_handle(CIRCUIT_WATCH_WORKFLOW_ID).terminate(reason="test")
    except RPCError:
        pass


async def test_watch_breakers_disables_and_enables_the_watch(
    dev_env: WorkflowEnvironment, task_queue: str, store: SQLiteBreakerStore
) -> None:
    client = dev_env.client
    address = client.service_client.config.target_host
    await end_the_pinned_watch(client)
    code, _, err = await run(RECOVERYCTL, "watch-breakers", "status", TEMPORAL_ADDRESS=address)
    assert code == 1 and "circuit watch 'recovery-circuit-watch'" in err
    assert "a recovery-worker starts" in err

    async with running_worker(client, store, task_queue):
        await ensure_watch(
            client, WatchInput(source="/etc/recovery.toml"), task_queue=task_queue,
            workflow_id=CIRCUIT_WATCH_WORKFLOW_ID,  # the product's, as on its own task queue
        )
        try:
            code, out, err = await run(
                RECOVERYCTL, "watch-breakers", "disable", "--note", "db failover", "--json",
                TEMPORAL_ADDRESS=address,
            )
            assert code == 0, err
            shown = json.loads(out)
            assert shown["paused"] is True and shown["note"] == "db failover"
            assert shown["interval_seconds"] == 10 and shown["settings_source"] == "/etc/recovery.toml"
            assert shown["workflow_id"] == "recovery-circuit-watch"
            assert (await describe_watch(client)).paused

            code, out, err = await run(RECOVERYCTL, "watch-breakers", "enable", TEMPORAL_ADDRESS=address)
            assert code == 0, err
            assert out.startswith("circuit watch: running (enabled with recoveryctl)")
            assert "workflow: recovery-circuit-watch   every: 10 s" in out
            assert "services file: /etc/recovery.toml" in out
            assert not (await describe_watch(client)).paused
        finally:
            await end_the_pinned_watch(client)


async def test_breakers_shows_what_the_watch_did_with_each_open_breaker(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, store: SQLiteBreakerStore,
    task_queue: str, service: str, tmp_path: Path,
) -> None:
    client = dev_env.client
    address = client.service_client.config.target_host
    url = f"sqlite:///{tmp_path}/breakers.db"
    await end_the_pinned_watch(client)
    store.set_state(service, BreakerState.OPEN)
    store.set_state(f"{service}-fine", BreakerState.CLOSED)
    settings = WatchInput(
        coordinator_workflow_id=orchestrator.coordinator_workflow_id,
        defaults=ServiceSettings(policy=blocking_policy()),
    )
    await ensure_watch(
        client, settings, interval=timedelta(seconds=1), task_queue=task_queue,
        workflow_id=CIRCUIT_WATCH_WORKFLOW_ID,
    )
    try:
        await eventually(
            lambda: describe_watch(client),
            lambda s: s.last_look is not None
            and (s.last_look.verdict(service) or "").startswith("already recovering"),
        )  # stable now: the recovery waits an hour in backoff, its breaker open
        code, out, err = await run(RECOVERYCTL, "breakers", "--store", url, "--json", TEMPORAL_ADDRESS=address)
        assert code == 0, err
        listed = {b["service_name"]: b for b in json.loads(out)["breakers"]}
        verdict = listed[service]["watch"]
        assert verdict == "already recovering (in_progress)", verdict
        assert listed[f"{service}-fine"]["watch"] is None

        code, out, err = await run(RECOVERYCTL, "breakers", "--store", url, TEMPORAL_ADDRESS=address)
        assert code == 0, err
        lines = out.splitlines()
        assert lines[1].startswith("watch: last look 20")
        assert lines[3].split()[-1] == "WATCH"
        [row] = [line for line in lines if line.startswith(f"{service} ")]
        assert row.rstrip().endswith(verdict)
    finally:
        await end_the_pinned_watch(client)


def test_status_shows_why_a_service_waits_and_until_when_one_is_held_back() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc).isoformat()
    status = {
        "orchestrator_running": True, "active_recoveries": 1, "queued_recoveries": 1,
        "services": {
            "api": {
                "state": "scheduled", "strategy": "exponential_backoff", "priority": 2,
                "attempt_count": 0, "max_attempts": 5, "next_attempt_at": None,
                "waiting_for": ["db"], "reason": "waiting for 'db' (in_progress) to recover first (depends_on)",
            }
        },
        "held_back": {"cache": {"reason": "storm guard: 20 attempts in the last hour", "until": now}},
        "recent_history": [],
    }
    text = render.render(Status(status), as_json=False)
    assert "waiting for 'db' (in_progress) to recover first" in text
    assert "held back by the storm guard:" in text
    assert "cache    2026-11-28 12:00:00  storm guard: 20 attempts in the last hour" in text


async def test_a_worker_refuses_a_bad_services_file_in_one_line(tmp_path: Path) -> None:
    services = tmp_path / "recovery.toml"
    services.write_text('[services.api]\nstrategy = "fast"\n')
    code, out, err = await run(
        sys.executable, "-m", "worker",
        RECOVERY_SERVICES_FILE=str(services),
        RECOVERY_CIRCUIT_STORE=f"sqlite:///{tmp_path}/b.db",
        TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
    )
    assert code == 2
    assert f"{services}: [services.api] strategy: unknown strategy 'fast'" in err
    assert "Traceback" not in err


async def test_breakers_never_creates_a_store_and_watch_breakers_bounds_its_note(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "breakers.db"
    code, out, err = await run(RECOVERYCTL, "breakers", "--store", f"sqlite:///{missing}")
    assert (code, out) == (2, "") and f"no breaker store at {missing}" in err
    assert not missing.parent.exists()
    unreachable = f"127.0.0.1:{free_port()}"
    code, _, err = await run(
        RECOVERYCTL, "watch-breakers", "disable", "--note", "x" * 501, TEMPORAL_ADDRESS=unreachable
    )
    assert code == 2 and "--note is 501 characters; at most 500" in err
