"""The versioning rule (SPEC §9): every run stays on the worker build it started on.

Workers run as versions of one Worker Deployment (``worker.py``). A ``ServiceRecovery``
lives minutes to hours and finishes on the build that started it, so a change to its
code never meets a history recorded by other code: no ``workflow.patched`` branch.
The coordinator and the circuit watch live for ever, one run at a time: each run is
pinned too, and moves to the deployment's current version when it continues as new.
What a running coordinator must change mid-run (rare) still takes a patch.
"""

from __future__ import annotations

from temporalio.common import VersioningBehavior
from temporalio.workflow import ContinueAsNewVersioningBehavior

# Each workflow type declares this on ``@workflow.defn``.
PINNED = VersioningBehavior.PINNED
# What the coordinator and the watch pass to ``continue_as_new``: the next run starts
# on the current version instead of inheriting the pinned one.
MOVE_TO_CURRENT_VERSION = ContinueAsNewVersioningBehavior.AUTO_UPGRADE
