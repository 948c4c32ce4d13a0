"""Take the screenshots of ``docs/web-ui.md`` from a real dev server and headless Chromium.

Run with ``make screenshots`` (or ``.venv/bin/python scripts/web_ui_screenshots.py``). It
starts a private ``temporal server start-dev`` with its Web UI on free loopback ports, a
worker in this process, and four recoveries on SQLite in a temporary directory (one
waiting for an operator, one in backoff, one failed, one succeeded); then it points
Debian's ``chromium`` at the Web UI's pages and writes PNGs to ``docs/images/``.

The Web UI keeps requests open, so a page never finishes loading: the script drives
Chromium over the DevTools protocol, lets each page render for a few seconds, and
captures it. Without ``chromium`` on PATH it says so and exits 0: the
test suite runs it only where Chromium exists.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

import websockets

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from activities.health_check_specs import TcpHealthCheck  # noqa: E402
from temporalio.client import Client  # noqa: E402

from recovery_breakers.sqlite_store import SQLiteBreakerStore  # noqa: E402
from starter.client.connection import ensure_search_attributes  # noqa: E402
from starter.client.orchestrator import RecoveryOrchestrator  # noqa: E402
from starter.client.watch_control import ensure_watch  # noqa: E402
from starter.devtools.dev import server_command, wait_for_server  # noqa: E402
from tests.helpers.servers import free_port  # noqa: E402
from worker import build_worker  # noqa: E402
from workflows.circuit_watch_models import WatchInput  # noqa: E402
from workflows.models import RecoveryPolicy, RecoveryStrategy  # noqa: E402

OUT = REPO / "docs" / "images"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--window-size=1500,1100", "--remote-debugging-port=0",
]
# The Web UI keeps requests open, so a page never finishes loading by itself (nor does
# --virtual-time-budget run out): render for this long, then capture over DevTools.
RENDER_SECONDS = 6.0


def chromium() -> str | None:
    """Return the Chromium binary, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium, driven over the DevTools protocol."""

    def __init__(self, binary: str, profile: Path) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self._profile = profile

    async def endpoint(self) -> str:
        """Return the DevTools HTTP address once Chromium has written it."""
        port_file = self._profile / "DevToolsActivePort"
        for _ in range(100):
            if port_file.exists() and port_file.read_text().strip():
                return f"127.0.0.1:{port_file.read_text().splitlines()[0]}"
            await asyncio.sleep(0.1)
        raise RuntimeError("chromium did not open its DevTools port")

    async def shoot(self, url: str, target: Path) -> Path:
        """Open ``url`` in a new tab, let it render, and save it as ``target`` (PNG)."""
        endpoint = await self.endpoint()
        request = urllib.request.Request(f"http://{endpoint}/json/new?{url}", method="PUT")
        tab = json.loads(await asyncio.to_thread(lambda: urllib.request.urlopen(request).read()))
        async with websockets.connect(tab["webSocketDebuggerUrl"], max_size=2**26) as page:
            await asyncio.sleep(RENDER_SECONDS)
            await page.send(json.dumps({"id": 1, "method": "Page.captureScreenshot"}))
            while True:
                reply = json.loads(await page.recv())
                if reply.get("id") == 1:
                    break
        target.write_bytes(base64.b64decode(reply["result"]["data"]))
        close = urllib.request.Request(f"http://{endpoint}/json/close/{tab['id']}")
        await asyncio.to_thread(lambda: urllib.request.urlopen(close).read())
        return target

    def close(self) -> None:
        """Stop Chromium."""
        self._process.terminate()
        self._process.wait(timeout=30)


async def shoot_all(
    browser: str, ui: str, port: int, state: Path, out: Path, only: list[str]
) -> None:
    """Start a worker and four recoveries, then shoot each page while the worker runs.

    The worker must run during the shots: the Web UI reads current details through
    a query that a worker answers.
    """
    client = await wait_for_server(f"127.0.0.1:{port}", timeout=180)
    await ensure_search_attributes(client)
    store = SQLiteBreakerStore(state / "breakers.db")
    async with build_worker(client, store):
        pages = await stage(client, ui)
        chrome = Browser(browser, state / "chromium")
        try:
            for name, url in pages.items():
                if only and name not in only:
                    continue
                shot = await chrome.shoot(url, out / f"{name}.png")
                print(f"{shot}  <- {url}")
        finally:
            chrome.close()


async def stage(client: Client, ui: str) -> dict[str, str]:
    """Start four recoveries; return the pages to shoot, by name."""
    closed_port = free_port()
    orchestrator = RecoveryOrchestrator(client=client)
    await orchestrator.start()
    await ensure_watch(client, WatchInput())  # as a recovery-worker does at start-up
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

    async def coordinator_run() -> str:
        return (await client.get_workflow_handle("recovery-coordinator").describe()).run_id

    async def watch_run() -> str:
        return (await client.get_workflow_handle("recovery-circuit-watch").describe()).run_id

    def listing(query: str) -> str:
        return f"{base}/workflows?query={urllib.parse.quote(query)}"

    return {
        "recoveries-list": listing("WorkflowType='ServiceRecovery'"),
        "awaiting-manual-list": listing("RecoveryState='awaiting_manual'"),
        "failed-list": listing("WorkflowType='ServiceRecovery' AND ExecutionStatus='Failed'"),
        "manual-recovery-details": f"{base}/workflows/recovery-payments/{await run_id('payments')}/user-metadata",
        "backoff-details": f"{base}/workflows/recovery-search/{await run_id('search')}/user-metadata",
        "backoff-timeline": f"{base}/workflows/recovery-search/{await run_id('search')}/timeline",
        "failed-recovery": f"{base}/workflows/recovery-ledger/{await run_id('ledger')}/history",
        "coordinator-queue": f"{base}/workflows/recovery-coordinator/{await coordinator_run()}/user-metadata",
        "circuit-watch": f"{base}/workflows/recovery-circuit-watch/{await watch_run()}/user-metadata",
    }


def main(argv: list[str] | None = None) -> int:
    """Take the screenshots; return an exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where the PNGs go (docs/images)")
    parser.add_argument("--only", action="append", default=[], help="a page's name; repeatable")
    args = parser.parse_args(argv)
    browser = chromium()
    if browser is None:
        print("chromium is not installed: no screenshots taken (apt-get install chromium)")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    port, ui_port = free_port(), free_port()
    ui = f"http://127.0.0.1:{ui_port}"
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        server = subprocess.Popen(
            server_command(state, port, ui_port), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            asyncio.run(shoot_all(browser, ui, port, state, args.out, args.only))
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
