"""Approve and cancel links: ``GET`` shows what the link would do, ``POST`` does it, once.

A link is checked twice. First here, without any server: its signature (altered, or
signed with another secret: 403) and its expiry (410). Then against the recovery run
it names, which is the only record that cannot disagree with itself: the run must
still be running and still await an operator for exactly the link's attempt, or the
link is stale (409: another attempt was approved, the recovery moved on, or it ended;
a link whose run is gone: 410).

That is also what makes a link good once, across receiver restarts and any number of
receivers, with nothing stored here: an approval goes by the recovery's
``approve_attempt`` update naming the attempt, and the recovery counts one approval
per attempt, so the second use of the link names an attempt already taken (or run).
A link made for an operator (``operator`` in it, signed) approves as them, so a
service's ``approvers`` judge it as any other approval (403 for anyone else); one made
for no one approves as ``link``. A cancel goes by the coordinator's ``cancel_recovery``,
as an operator's cancel does (it holds automation off the service); a recovery that
is cancelled awaits nothing, so the link is stale from then on.

``GET`` never changes anything: chat tools and mail scanners open links to preview
them, and a preview must not approve a recovery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.approval_links import LinkClaim, LinkRefused, verify_link
from starter.client.coordinator_client import CoordinatorClient
from starter.client.recoveries import recovery_handle
from starter.receiver.pages import Page
from workflows.coordinator_models import CancelRecoveryInput
from workflows.errors import RecoveryOrchestratorError, from_temporal
from workflows.models import (
    ApproveInput,
    RecoveryPhase,
    RecoveryState,
    RecoveryStatus,
    RecoveryStrategy,
)
from workflows.service_recovery import ServiceRecovery

logger = logging.getLogger(__name__)

# Who the recovery records as having approved through a link made for no one in particular.
LINK_OPERATOR = "link"
_VERBS = {"approve": "Approve", "cancel": "Cancel"}
# A recovery answers through a worker: with none polling, the page says so (503) in time.
ANSWER_WITHIN = timedelta(seconds=10)


class LinkDesk:
    """Answer the links of one receiver: confirmation pages and the actions themselves.

    Args:
        client: A connected Temporal client.
        coordinator: The coordinator a cancel goes through.
        secret: The link secret; None when this receiver serves no links.
        now: The clock (tests pass another to try expiry).
    """

    def __init__(
        self,
        client: Client,
        coordinator: CoordinatorClient,
        secret: bytes | None,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self._client = client
        self._coordinator = coordinator
        self._secret = secret
        self._now = now

    async def confirm(self, action: str, query: Mapping[str, str]) -> Page:
        """The page ``GET`` shows: what the link would do, and a button to do it. Changes nothing."""
        claim = self._verified(action, query)
        status = await self._awaiting(claim)
        verb = _VERBS[claim.action]
        return Page(
            200,
            f"{verb} the recovery of {claim.service_name}?",
            (
                f"Attempt {claim.attempt} of {status.max_attempts} of the recovery of "
                f"'{claim.service_name}' awaits an operator.",
                _consequence(claim),
                f"This link is good once, until {claim.expires_at:%Y-%m-%d %H:%M} UTC"
                + (f", and acts as {claim.operator}." if claim.operator else "."),
            ),
            button=(
                f"Approve attempt {claim.attempt}" if claim.action == "approve" else "Cancel the recovery"
            ),
        )

    async def act(self, action: str, query: Mapping[str, str]) -> Page:
        """What ``POST`` does: approve or cancel exactly the link's run and attempt, once."""
        claim = self._verified(action, query)
        await self._awaiting(claim)
        if claim.action == "approve":
            return await self._approve(claim)
        return await self._cancel(claim)

    def _verified(self, action: str, query: Mapping[str, str]) -> LinkClaim:
        if self._secret is None:
            raise LinkRefused("this receiver serves no links (RECOVERY_LINK_SECRET is not set)", 404)
        return verify_link(self._secret, action, query, self._now())

    async def _awaiting(self, claim: LinkClaim) -> RecoveryStatus:
        """Return the run's status if it awaits an operator for the link's attempt.

        Raises:
            LinkRefused: 410 when the run is gone or ended, 409 when it moved on.
        """
        handle = recovery_handle(self._client, claim.service_name, claim.run_id)
        try:
            description = await handle.describe()
            if description.status is not WorkflowExecutionStatus.RUNNING:
                ended = description.status.name.lower() if description.status else "ended"
                raise LinkRefused(
                    f"This recovery of '{claim.service_name}' has ended ({ended}): the link "
                    "is stale and changes nothing.",
                    410,
                )
            status = await handle.query(ServiceRecovery.status, rpc_timeout=ANSWER_WITHIN)
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                raise LinkRefused(
                    f"No such recovery run of '{claim.service_name}': the link is stale.", 410
                ) from None
            raise
        awaiting = status.state is RecoveryState.AWAITING_MANUAL or (
            status.strategy is RecoveryStrategy.MANUAL and status.phase is RecoveryPhase.STARTING
        )
        awaited = status.attempt_count + 1
        if not awaiting or awaited != claim.attempt:
            now = (
                f"awaits approval of attempt {awaited}"
                if awaiting
                else f"is {status.state.value} ({status.phase.value})"
            )
            raise LinkRefused(
                f"This link is for attempt {claim.attempt}; the recovery of '{claim.service_name}' "
                f"{now}. The link was used already, or the recovery moved on: it changes nothing.",
                409,
            )
        return status

    async def _approve(self, claim: LinkClaim) -> Page:
        request = ApproveInput(
            operator=claim.operator or LINK_OPERATOR,
            note=f"approved from a signed link (attempt {claim.attempt})",
            attempt=claim.attempt,
        )
        handle = recovery_handle(self._client, claim.service_name, claim.run_id)
        try:
            await handle.execute_update(
                ServiceRecovery.approve_attempt, request, rpc_timeout=ANSWER_WITHIN
            )
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            raise LinkRefused(
                f"The recovery of '{claim.service_name}' did not answer within "
                f"{ANSWER_WITHIN.total_seconds():g} s (is a worker running?): open the link again "
                "to see whether the approval was taken.",
                503,
            ) from None
        except WorkflowUpdateFailedError as err:
            ours = from_temporal(err)
            if ours is None:
                raise
            raise LinkRefused(f"{ours} The link changes nothing.", _refusal_status(ours)) from None
        logger.info(
            "link approved attempt %d of %s (run %s)", claim.attempt, claim.service_name, claim.run_id
        )
        started = f"Attempt {claim.attempt} of the recovery of '{claim.service_name}' starts now."
        return Page(200, "Approved", (started,))

    async def _cancel(self, claim: LinkClaim) -> Page:
        try:
            made_for = f", made for {claim.operator}" if claim.operator else ""
            result = await self._coordinator.cancel_recovery(
                CancelRecoveryInput(
                    service_name=claim.service_name,
                    reason=f"cancelled from a signed link (attempt {claim.attempt}{made_for})",
                )
            )
        except RecoveryOrchestratorError as err:
            raise LinkRefused(f"{err} The link changes nothing.", _refusal_status(err)) from None
        if result is None:
            raise LinkRefused("No coordinator is running: nothing to cancel.", 409)
        if not result.cancelled:
            raise LinkRefused(
                f"The recovery of '{claim.service_name}' was not cancelled: it is {result.was}.", 409
            )
        logger.info("link cancelled the recovery of %s (run %s)", claim.service_name, claim.run_id)
        return Page(200, "Cancelled", (f"The recovery of '{claim.service_name}' is cancelled.",))


def _consequence(claim: LinkClaim) -> str:
    if claim.action == "approve":
        return (
            "Approving runs this one attempt now "
            "(reset the breaker, health check, close or re-open it)."
        )
    return "Cancelling ends the recovery now, and keeps automation off the service for a while."


def _refusal_status(err: RecoveryOrchestratorError) -> int:
    """403 for an approval the service's approvers do not allow; 409 for any other refusal."""
    return 403 if err.code == "not_an_approver" else 409
