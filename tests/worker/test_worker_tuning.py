"""``RECOVERY_WORKER_TUNING``: the worker's cache, concurrency and pollers, set without code."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import PollerBehaviorSimpleMaximum

from activities.worker_tuning import WORKER_TUNING_ENV, WorkerTuning
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from tests.helpers.processes import worker_refusing_to_start
from worker import build_worker

pytestmark = pytest.mark.timeout(60)


def test_the_settings_given_reach_the_worker_and_the_rest_stay_the_sdks() -> None:
    tuning = WorkerTuning.parse(" max_cached_workflows=2000, workflow_pollers=10 ,,")
    assert tuning.describe() == "max_cached_workflows=2000,workflow_pollers=10"
    assert tuning.worker_options() == {
        "max_cached_workflows": 2000,
        "workflow_task_poller_behavior": PollerBehaviorSimpleMaximum(10),
    }
    assert WorkerTuning.parse("").worker_options() == {}
    assert WorkerTuning.parse("").describe() == "SDK defaults"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("pollers=3", "'pollers' is not a setting; the settings are max_cached_workflows"),
        ("workflow_pollers", "'workflow_pollers' is not name=value"),
        ("workflow_pollers=1", "workflow_pollers='1': Input should be greater than or equal to 2"),
        ("max_cached_workflows=lots", "max_cached_workflows='lots': Input should be a valid integer"),
        ("max_cached_workflows=1e3", "max_cached_workflows='1e3': Input should be a valid integer"),
        ("max_cached_workflows=1", "max_cached_workflows='1': Input should be greater than or equal to 20"),
        ("activity_pollers=0", "activity_pollers='0': Input should be greater than or equal to 1"),
        ("workflow_pollers=3,workflow_pollers=4", "'workflow_pollers' is given twice"),
        (
            "max_concurrent_workflow_tasks=4,workflow_pollers=5",
            "workflow_pollers (5) must not exceed max_concurrent_workflow_tasks (4)",
        ),
        (  # the pollers left out are the SDK's 5
            "max_concurrent_activities=3",
            "activity_pollers (5) must not exceed max_concurrent_activities (3)",
        ),
    ],
)
def test_a_bad_setting_is_named(raw: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        WorkerTuning.parse(raw)
    assert str(caught.value).startswith(f"{WORKER_TUNING_ENV}: ")
    assert message in str(caught.value)


async def test_build_worker_applies_the_tuning(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore
) -> None:
    tuned = build_worker(
        dev_env.client, store, task_queue="tuning",
        tuning=WorkerTuning.parse("max_cached_workflows=70,max_concurrent_activities=30"),
    )
    config = tuned.config()
    assert config.get("max_cached_workflows") == 70
    assert config.get("max_concurrent_activities") == 30
    plain = build_worker(dev_env.client, store, task_queue="plain").config()
    assert plain.get("max_cached_workflows") == 1000  # the SDK's default, untouched


async def test_a_bad_tuning_stops_the_worker_before_it_connects(tmp_path: Path) -> None:
    settings = {WORKER_TUNING_ENV: "max_cached_workflows=-5"}
    last = await worker_refusing_to_start(settings, tmp_path)
    assert f"cannot start: {WORKER_TUNING_ENV}: max_cached_workflows" in last
