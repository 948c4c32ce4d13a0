"""The versioning rule (SPEC §9): every run stays on the worker build it started on.

Versioned workers (``worker.py``) run as versions of one Worker Deployment and make
every workflow they run ``PINNED`` (their default behaviour: the server refuses a
behaviour from a worker that is not versioned, so the workflow classes declare none).
A ``ServiceRecovery`` lives minutes to hours and finishes on the build that started
it, so a change to its code never meets a history recorded by other code: no
``workflow.patched`` branch. The coordinator and the circuit watch live for ever, one
run at a time: when the deployment's current version changes they continue as new,
and the next run starts on the new version. What a running coordinator must change
mid-run (rare) still takes a patch.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.workflow import ContinueAsNewVersioningBehavior

# What versioned workers make every run of ours.
PINNED = VersioningBehavior.PINNED


def version_changed() -> bool:
    """Whether this pinned run should continue as new onto a new current version."""
    return workflow.info().is_target_worker_deployment_version_changed()


def next_run_versioning() -> ContinueAsNewVersioningBehavior | None:
    """What ``continue_as_new`` passes: start the next run on the current version.

    None on an unversioned worker, where there is no version to move to.
    """
    if workflow.info().get_current_deployment_version() is None:
        return None
    return ContinueAsNewVersioningBehavior.AUTO_UPGRADE
