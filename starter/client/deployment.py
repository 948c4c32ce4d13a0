"""Worker Versioning: the worker's deployment version, and making a version current.

Workers run as versions of the Worker Deployment ``recovery-orchestrator`` (SPEC §9), one
version per build: ``RECOVERY_BUILD_ID``, else the installed package's version. Every run
stays on the version it started on (``workflows/versioning.py``); new runs start on the
deployment's *current* version, which the operator chooses with
``temporal worker deployment set-current-version`` (docs/versioning.md). Two exceptions,
both here: a worker whose deployment has no current version yet makes its own version
current (a fresh setup works with one command), and ``make dev`` / ``recoveryctl dev``
make the build they run current.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from google.protobuf.field_mask_pb2 import FieldMask
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.deployment.v1 import WorkerDeploymentInfo
from temporalio.api.deployment.v1 import WorkerDeploymentVersion as RawDeploymentVersion
from temporalio.api.enums.v1 import RoutingConfigUpdateState
from temporalio.api.workflow.v1 import VersioningOverride, WorkflowExecutionOptions
from temporalio.api.workflowservice.v1 import (
    UpdateWorkflowExecutionOptionsRequest,
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import WorkerDeploymentConfig

from activities.build_id import DISTRIBUTION, default_build_id, parse_build_id
from activities.settings import RecoverySettings
from workflows.constants import SERVICE_RECOVERY_WORKFLOW
from workflows.versioning import PINNED

logger = logging.getLogger(__name__)

DEPLOYMENT_NAME = "recovery-orchestrator"
# How long a worker tries to make its version current: the server knows a version once
# one of its workers has polled, usually within a second of the worker starting.
MAKE_CURRENT_TIMEOUT = 30.0
# The server limits reads of a deployment (a few a second per namespace): back off.
_RETRY_DELAY = 0.2
_MAX_RETRY_DELAY = 2.0
# What may go away by itself: the version not known yet, another worker's change first
# (conflict token), a server briefly busy.
_RETRYABLE = {
    RPCStatusCode.NOT_FOUND,
    RPCStatusCode.FAILED_PRECONDITION,
    RPCStatusCode.ABORTED,
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
}


def build_id_from_env(environ: Mapping[str, str] | None = None) -> str:
    """Return ``RECOVERY_BUILD_ID`` (validated), else the package version.

    Empty counts as not set, as compose files write an optional setting
    (``${RECOVERY_BUILD_ID:-}``): the image's own package version, never a stale default.

    Raises:
        ValueError: the setting is not a usable build id.
    """
    given: str | None = RecoverySettings.read("build_id", environ)
    if given is None:
        return parse_build_id(default_build_id(), f"the package version of {DISTRIBUTION}")
    return given


def worker_version(
    build_id: str | None = None, deployment_name: str = DEPLOYMENT_NAME
) -> WorkerDeploymentVersion:
    """Return this worker's version: ``deployment_name`` at ``build_id`` (default from the env)."""
    return WorkerDeploymentVersion(
        deployment_name=deployment_name,
        build_id=parse_build_id(build_id) if build_id is not None else build_id_from_env(),
    )


def deployment_config(version: WorkerDeploymentVersion) -> WorkerDeploymentConfig:
    """Return the versioned worker's configuration.

    Every run it starts or takes is PINNED to its version (``workflows/versioning.py``:
    the workflow classes declare no behaviour, which an unversioned worker could not send).
    """
    return WorkerDeploymentConfig(
        version=version,
        use_worker_versioning=True,
        default_versioning_behavior=PINNED,
    )


def version_text(version: WorkerDeploymentVersion) -> str:
    """Return ``name:build``, as the server, the CLI and visibility queries write a version."""
    return f"{version.deployment_name}:{version.build_id}"


def set_current_command(version: WorkerDeploymentVersion, client: Client) -> str:
    """Return the ``temporal`` command that makes ``version`` current, ready to paste."""
    return shlex.join([
        "temporal", "worker", "deployment", "set-current-version",
        "--deployment-name", version.deployment_name, "--build-id", version.build_id,
        "--address", client.service_client.config.target_host,
        "--namespace", client.namespace, "--yes",
    ])


def unversioned_recoveries_query(task_queue: str) -> str:
    """Return the visibility query of running recoveries that no version has taken yet.

    These started on an unversioned (0.8 or earlier) worker. Once any version is current
    (or ramping) they move to it at their next workflow task, where that version's code
    must replay what the old code recorded.
    """
    return (
        f"WorkflowType = '{SERVICE_RECOVERY_WORKFLOW}' AND ExecutionStatus = 'Running' "
        f"AND TaskQueue = '{task_queue}' AND TemporalWorkerDeployment IS NULL"
    )


def pinned_elsewhere_query(version: WorkerDeploymentVersion) -> str:
    """Return the visibility query of running runs pinned to other builds of the deployment."""
    return (
        f"TemporalWorkerDeployment = '{version.deployment_name}' AND "
        f"TemporalWorkerDeploymentVersion != '{version_text(version)}' AND "
        "ExecutionStatus = 'Running'"
    )


async def move_here(client: Client, version: WorkerDeploymentVersion) -> int:
    """Pin every running run of the deployment's other builds to ``version``; return how many.

    Dev mode only (``make dev``): it runs one build, so after a version bump the old
    build's runs (the coordinator and the watch too) would wait for a worker that never
    comes. Moved, they replay on this build's code: fine for a developer's own state; in
    production, finish them on their build instead (docs/versioning.md). A pinned
    override is inherited by children and continue-as-new: the next ``make dev`` of
    another build moves them again.
    """
    override = VersioningOverride(
        pinned=VersioningOverride.PinnedOverride(
            behavior=VersioningOverride.PinnedOverrideBehavior.PINNED_OVERRIDE_BEHAVIOR_PINNED,
            version=RawDeploymentVersion(
                deployment_name=version.deployment_name, build_id=version.build_id
            ),
        )
    )
    moved = 0
    async for run in client.list_workflows(pinned_elsewhere_query(version)):
        await client.workflow_service.update_workflow_execution_options(
            UpdateWorkflowExecutionOptionsRequest(
                namespace=client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=run.id, run_id=run.run_id),
                workflow_execution_options=WorkflowExecutionOptions(versioning_override=override),
                update_mask=FieldMask(paths=["versioning_override"]),
            )
        )
        moved += 1
    return moved


class Outcome(enum.Enum):
    """What ``make_current`` found or did."""

    MADE_CURRENT = "made current"
    ALREADY_CURRENT = "already current"
    OTHER_CURRENT = "another version is current"
    REFUSED = "refused"
    TIMED_OUT = "timed out"


@dataclass(frozen=True)
class CurrentVersion:
    """The answer of ``make_current``: what happened, the current build, and one line to log."""

    outcome: Outcome
    current_build_id: str | None
    message: str


async def describe_deployment(client: Client, deployment_name: str) -> tuple[WorkerDeploymentInfo, bytes] | None:
    """Return the deployment's info and conflict token, or None while it does not exist."""
    try:
        response = await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment_name)
        )
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    return response.worker_deployment_info, response.conflict_token


def current_build_id(info: WorkerDeploymentInfo) -> str | None:
    """Return the build id of the deployment's current version (None: unversioned workers)."""
    build_id = info.routing_config.current_deployment_version.build_id
    return build_id or None


async def make_current(
    client: Client,
    version: WorkerDeploymentVersion,
    *,
    only_if_none: bool = True,
    task_queue: str | None = None,
    timeout: float = MAKE_CURRENT_TIMEOUT,
    identity: str | None = None,
) -> CurrentVersion:
    """Make ``version`` the deployment's current version, once the server knows it.

    Call it after the version's worker has started polling: the server refuses a version
    no worker has polled. Safe against other workers doing the same at the same moment:
    each change carries the conflict token of the state it was decided on, so of two
    workers racing on a fresh deployment one wins and the other finds that version current.

    Args:
        only_if_none: Only where the deployment has no current version yet (a worker's
            start-up); False makes it current whatever is (``make dev``).
        task_queue: Where ``only_if_none`` is set, refuse while recoveries started on
            an unversioned worker still run on this task queue (they would move to this
            version mid-run: docs/versioning.md, "From 0.8").
        timeout: Seconds to wait for the server to know the version.
        identity: Recorded as the deployment's last modifier (default: the client's).

    Returns:
        What was found or done, with one line for the log. Never raises for a server
        that refuses or does not know the version in time (``TIMED_OUT``): the worker
        serves what it is sent either way.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    build_id = version.build_id
    last_error = "the server does not know this version yet (no poll from its worker)"
    delay = _RETRY_DELAY
    while True:
        described = await _describe_or_none(client, version.deployment_name)
        if described is not None:
            info, token = described
            current = current_build_id(info)
            if current == build_id:
                return CurrentVersion(
                    Outcome.ALREADY_CURRENT, current, f"version {version_text(version)} is current"
                )
            if current is not None and only_if_none:
                return CurrentVersion(
                    Outcome.OTHER_CURRENT,
                    current,
                    f"version {version.deployment_name}:{current} is current: new recoveries "
                    f"start there, not on this worker's {build_id}; to move them here "
                    f"(docs/versioning.md): {set_current_command(version, client)}",
                )
            if current is None and only_if_none and task_queue is not None:
                refusal = await _unversioned_refusal(client, version, task_queue)
                if refusal is not None:
                    return CurrentVersion(Outcome.REFUSED, None, refusal)
            known = any(s.deployment_version.build_id == build_id for s in info.version_summaries)
            if known:
                try:
                    await client.workflow_service.set_worker_deployment_current_version(
                        SetWorkerDeploymentCurrentVersionRequest(
                            namespace=client.namespace,
                            deployment_name=version.deployment_name,
                            build_id=build_id,
                            conflict_token=token,
                            identity=identity or client.identity,
                        )
                    )
                except RPCError as err:
                    if err.status not in _RETRYABLE:
                        raise
                    last_error = err.message  # another worker first, or not yet known
                else:
                    previous = f" (was {current})" if current else " (was: unversioned workers)"
                    await _wait_propagated(client, version.deployment_name, deadline)
                    return CurrentVersion(
                        Outcome.MADE_CURRENT,
                        build_id,
                        f"made version {version_text(version)} current{previous}",
                    )
        if loop.time() >= deadline:
            return CurrentVersion(
                Outcome.TIMED_OUT,
                None,
                f"could not make version {version_text(version)} current in {timeout:g}s "
                f"({last_error}); once its worker polls: {set_current_command(version, client)}",
            )
        await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
        delay = min(delay * 1.5, _MAX_RETRY_DELAY)


async def _wait_propagated(client: Client, deployment_name: str, deadline: float) -> None:
    """Wait (at most until ``deadline``) until every task queue routes by the new version.

    Until then a workflow task may still be told nothing changed: a pinned coordinator
    signalled just after the change would start one more recovery on the old version.
    """
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        described = await _describe_or_none(client, deployment_name)
        if described is not None and (
            described[0].routing_config_update_state
            != RoutingConfigUpdateState.ROUTING_CONFIG_UPDATE_STATE_IN_PROGRESS
        ):
            return
        await asyncio.sleep(0.5)


async def _describe_or_none(client: Client, deployment_name: str) -> tuple[WorkerDeploymentInfo, bytes] | None:
    try:
        return await describe_deployment(client, deployment_name)
    except RPCError as err:
        if err.status not in _RETRYABLE:
            raise
        return None


async def _unversioned_refusal(
    client: Client, version: WorkerDeploymentVersion, task_queue: str
) -> str | None:
    """Return why this worker must not make itself current, or None."""
    query = unversioned_recoveries_query(task_queue)
    try:
        running = (await client.count_workflows(query)).count
    except RPCError as err:
        logger.warning("could not count recoveries on unversioned workers (%s)", err.message)
        return None
    if not running:
        return None
    return (
        f"not making version {version_text(version)} current by itself: {running} recoveries "
        f"started on unversioned (pre-0.9) workers are still running, and once any version is "
        f"current they move to it at their next workflow task. If this build replays them "
        f"(docs/versioning.md, \"From 0.8\"), make it current: {set_current_command(version, client)}; "
        f"otherwise let them finish on the old workers first (`temporal workflow count --query "
        f"\"{query}\"` is 0)"
    )
