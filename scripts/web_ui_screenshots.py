"""Take the screenshots of ``docs/web-ui.md`` from a real dev server and headless Chromium.

Run with ``make screenshots`` (or ``.venv/bin/python scripts/web_ui_screenshots.py``). It
starts a private ``temporal server start-dev`` with its Web UI on free loopback ports, a
worker in this process, and four recoveries on SQLite in a temporary directory (one
waiting for an operator, one in backoff, one failed, one succeeded); then it points
Debian's ``chromium`` at the Web UI's pages and writes PNGs to ``docs/images/``.

The Web UI keeps a request open, so a headless screenshot needs a bounded
``--virtual-time-budget``. Without ``chromium`` on PATH it says so and exits 0: the
test suite runs it only where Chromium exists.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from activities.health_check_specs import TcpHealthCheck  # noqa: E402
from temporalio.client import Client  # noqa: E402

from activities.sqlite_store import SQLiteBreakerStore  # noqa: E402
from starter.dev import server_command, wait_for_server  # noqa: E402
from starter.connection import ensure_search_attributes  # noqa: E402
from starter.orchestrator import RecoveryOrchestrator  # noqa: E402
from tests.servers import free_port  # noqa: E402
from worker import build_worker  # noqa: E402
from workflows.models import RecoveryPolicy, RecoveryStrategy  # noqa: E402

OUT = REPO / "docs" / "images"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--window-size=1500,950", "--virtual-time-budget=15000",
]


def chromium() -> str | None:
    """Return the Chromium binary, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def shoot(browser: str, url: str, name: str, profile: Path) -> Path:
    """Screenshot ``url`` into ``docs/images/<name>.png``."""
    target = OUT / f"{name}.png"
    subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={target}", url],
        check=True, capture_output=True, timeout=120,
    )
    return target


async def shoot_all(browser: str, ui: str, port: int, state: Path) -> None:
    """Start a worker and four recoveries, then shoot each page while the worker runs.

    The worker must run during the shots: the Web UI reads current details through
    a query that a worker answers.
    """
    client = await wait_for_server(f"127.0.0.1:{port}")
    await ensure_search_attributes(client)
    store = SQLiteBreakerStore(state / "breakers.db")
    async with build_worker(client, store):
        pages = await stage(client, ui)
        for name, url in pages.items():
            shot = await asyncio.to_thread(shoot, browser, url, name, state / "chromium")
            print(f"{shot.relative_to(REPO)}  <- {url}")


async def stage(client: Client, ui: str) -> dict[str, str]:
    """Start four recoveries; return the pages to shoot, by name."""
    closed_port = free_port()
    orchestrator = RecoveryOrchestrator(client=client)
    await orchestrator.start()
    down = TcpHealthCheck(host="127.0.0.1", port=closed_port, timeout_ms=500)
    await orchestrator.schedule_recovery("payments", RecoveryStrategy.MANUAL, priority=1)
    await orchestrator.schedule_recovery(
        "search", priority=3,
        policy=RecoveryPolicy(initial_delay_ms=600_000, max_delay_ms=600_000, health_check=down),
    )
    await orchestrator.schedule_recovery(
        "ledger", priority=2,
        policy=RecoveryPolicy(max_retry_attempts=3, initial_delay_ms=200, max_delay_ms=400,
                              health_check=down),
    )
    await orchestrator.schedule_recovery("auth", RecoveryStrategy.IMMEDIATE, priority=1)
    for name in ("ledger", "auth"):
        await orchestrator.execute_recovery(name)
    await asyncio.sleep(2)  # let visibility catch up
    base = f"{ui}/namespaces/default"

    async def run_id(service: str) -> str:
        description = await client.get_workflow_handle(f"recovery-{service}").describe()
        return description.run_id

    def listing(query: str) -> str:
        return f"{base}/workflows?query={urllib.parse.quote(query)}"

    return {
        "recoveries-list": listing("WorkflowType='ServiceRecovery'"),
        "awaiting-manual-list": listing("RecoveryState='awaiting_manual'"),
        "failed-list": listing("WorkflowType='ServiceRecovery' AND ExecutionStatus='Failed'"),
        "manual-recovery": f"{base}/workflows/recovery-payments/{await run_id('payments')}/history",
        "backoff-timeline": f"{base}/workflows/recovery-search/{await run_id('search')}/history",
        "failed-recovery": f"{base}/workflows/recovery-ledger/{await run_id('ledger')}/history",
        "watch-schedule": f"{base}/schedules",
    }


def main() -> int:
    """Take every screenshot; return an exit code."""
    browser = chromium()
    if browser is None:
        print("chromium is not installed: no screenshots taken (apt-get install chromium)")
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    port, ui_port = free_port(), free_port()
    ui = f"http://127.0.0.1:{ui_port}"
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        server = subprocess.Popen(
            server_command(state, port, ui_port), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            asyncio.run(shoot_all(browser, ui, port, state))
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
