"""The worker's cache, concurrency and poller settings: ``RECOVERY_WORKER_TUNING``.

The model lives in ``activities.worker_tuning``, beside ``activities.settings`` (one model for
every ``RECOVERY_*`` setting) which holds it; this module keeps the old import path.
"""

from __future__ import annotations

from activities.worker_tuning import SDK_POLLERS, SDK_TASK_SLOTS, WORKER_TUNING_ENV, WorkerTuning

__all__ = ["SDK_POLLERS", "SDK_TASK_SLOTS", "WORKER_TUNING_ENV", "WorkerTuning"]
