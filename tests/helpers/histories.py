"""Checked-in workflow histories (``tests/histories/``): load one, record one.

``tests/workflows/test_replay.py`` replays every file there against today's workflow code;
tests that drive a run to a story worth keeping call ``record_history`` at the end.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from temporalio.client import WorkflowHistory

HISTORIES = Path(__file__).resolve().parent.parent / "histories"


def load_history(path: Path) -> WorkflowHistory:
    """Load a checked-in history under its own workflow id.

    Servers since 1.2x write the id into the start event; older files are named after
    the file, which a replay of them must then not depend on.
    """
    text = path.read_text()
    started = json.loads(text)["events"][0].get("workflowExecutionStartedEventAttributes", {})
    return WorkflowHistory.from_json(started.get("workflowId") or path.stem, text)


def record_history(history: WorkflowHistory, name: str) -> None:
    """Write a history under tests/histories/ when RECORD_HISTORIES=1 (for replay tests).

    The time-skipping server leaves the workflow id out of the start event: it is written
    in, so that the replay runs under the run's own id (``ServiceRecovery`` refuses any
    other than ``recovery-<service_name>``).
    """
    if os.environ.get("RECORD_HISTORIES") == "1":
        started = history.events[0].workflow_execution_started_event_attributes
        if not started.workflow_id:
            started.workflow_id = history.workflow_id
        HISTORIES.mkdir(exist_ok=True)
        (HISTORIES / f"{name}.json").write_text(history.to_json())
