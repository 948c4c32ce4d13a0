"""An active recovery's lifecycle: one enum, and the moves it may make.

A recovery the coordinator took off its queue moves, until it leaves the ledger:

    STARTING            -> RUNNING             its child started (or a report names its run)
                        -> AWAITING_OPERATORS  a MANUAL one started
                        -> CANCELLING          an operator cancelled it while it started
    RUNNING             -> AWAITING_OPERATORS  its child waits for an operator (escalated)
                        -> CANCELLING          an operator cancelled it
                        -> CLOSING             its final report: the child is only closing now
    AWAITING_OPERATORS  -> CANCELLING, CLOSING as from RUNNING
    CANCELLING          -> CLOSING             its final report came after all
    CLOSING             -> (nothing)

``TRANSITIONS`` is that table as data; ``ActiveRecovery.advance`` refuses any other
move. A recovery leaves the ledger (no state: it is deleted) when its child closes,
when its start is refused or put back, when a child started before a continue-as-new
reports its end, or, CLOSING, when a new run starts.

Beside the lifecycle, one thing never changes back: whether it holds one of the
queue's slots. It does if the main loop started it from the queue, until operators
pace it (MANUAL, or escalated); one started by ``execute_recovery`` never does. A
cancelled or closing recovery keeps what it had: one run per workflow id.

States carried by runs before this enum held seven interacting fields; they still
decode (``_from_flags``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, model_validator

from workflows.models import RecoveryStrategy, RecoveryTask


class Lifecycle(str, enum.Enum):
    """Where an active recovery stands in the coordinator's hands."""

    # Taken off the queue; its child's start is in flight (no run id yet).
    STARTING = "starting"
    # Its child runs and reports; the queue paces it (a slot), or execute_recovery did.
    RUNNING = "running"
    # MANUAL, or escalated: operators pace its attempts, one approval each; no slot.
    AWAITING_OPERATORS = "awaiting_operators"
    # Cancelled by an operator: recorded at once, its child told to stop; its final
    # report (or its close) is still to come.
    CANCELLING = "cancelling"
    # Its end is recorded from its final report; the child is only closing now.
    CLOSING = "closing"

    @property
    def live(self) -> bool:
        """True while its end is not recorded: it shows as running, and may be cancelled."""
        return self in _LIVE


_LIVE = frozenset({Lifecycle.STARTING, Lifecycle.RUNNING, Lifecycle.AWAITING_OPERATORS})

# Each state and where it may go next (staying where it is is always allowed).
TRANSITIONS: Mapping[Lifecycle, frozenset[Lifecycle]] = {
    Lifecycle.STARTING: frozenset(
        {Lifecycle.RUNNING, Lifecycle.AWAITING_OPERATORS, Lifecycle.CANCELLING}
    ),
    Lifecycle.RUNNING: frozenset(
        {Lifecycle.AWAITING_OPERATORS, Lifecycle.CANCELLING, Lifecycle.CLOSING}
    ),
    Lifecycle.AWAITING_OPERATORS: frozenset({Lifecycle.CANCELLING, Lifecycle.CLOSING}),
    Lifecycle.CANCELLING: frozenset({Lifecycle.CLOSING}),
    Lifecycle.CLOSING: frozenset(),
}


class LifecycleError(RuntimeError):
    """A move ``TRANSITIONS`` does not allow: a bug in the ledger, never a caller's error."""


class ActiveRecovery(BaseModel):
    """A recovery the coordinator started and has not yet seen close."""

    task: RecoveryTask
    lifecycle: Lifecycle = Lifecycle.STARTING
    # False once operators pace it, or if execute_recovery started it (see the module).
    holds_slot: bool = True
    # Its child's run, once its start has returned (or a report named it).
    run_id: str | None = None
    last_report: int = 0
    # Why an operator cancelled it (kept while it closes: a cancel that came too late
    # to stop it is replaced in the history by how it really ended).
    cancel_reason: str | None = None
    # The attempt count when an operator's approval was sent: one approval per wait.
    approval_for_attempt: int | None = None

    @property
    def live(self) -> bool:
        """True while its end is not recorded."""
        return self.lifecycle.live

    @property
    def awaits_operators(self) -> bool:
        """True if operators pace it: MANUAL (from its start), or escalated."""
        if self.lifecycle is Lifecycle.STARTING:
            return self.task.strategy is RecoveryStrategy.MANUAL
        return self.lifecycle is Lifecycle.AWAITING_OPERATORS

    def advance(self, to: Lifecycle) -> None:
        """Move to ``to``, if ``TRANSITIONS`` allows it.

        Raises:
            LifecycleError: naming the move.
        """
        if to is not self.lifecycle and to not in TRANSITIONS[self.lifecycle]:
            raise LifecycleError(
                f"{self.task.service_name}: a recovery {self.lifecycle.value} cannot become "
                f"{to.value}"
            )
        self.lifecycle = to

    def started(self, run_id: str) -> None:
        """Its child started as ``run_id``: operators pace a MANUAL one from the first attempt."""
        self.run_id = run_id
        if self.lifecycle is Lifecycle.STARTING:
            manual = self.task.strategy is RecoveryStrategy.MANUAL
            self.advance(Lifecycle.AWAITING_OPERATORS if manual else Lifecycle.RUNNING)

    def operators_take_over(self) -> None:
        """Its child waits for an operator: it gives up its slot for good."""
        self.holds_slot = False
        if self.lifecycle in (Lifecycle.STARTING, Lifecycle.RUNNING):
            self.advance(Lifecycle.AWAITING_OPERATORS)

    @model_validator(mode="before")
    @classmethod
    def _from_flags(cls, data: Any) -> Any:
        """Read a state carried by a run from before the lifecycle enum (its seven flags).

        An entry without ``lifecycle`` takes the one its flags describe (all absent:
        started if it has a run id, else starting), so ``ActiveRecovery(task=...)``
        needs none either.
        """
        if not isinstance(data, dict) or "lifecycle" in data:
            return data
        flags = {key: data[key] for key in _LEGACY_FLAGS if key in data}
        data = {key: value for key, value in data.items() if key not in _LEGACY_FLAGS}
        data["lifecycle"] = legacy_lifecycle(data, flags)
        if "outside_slots" in flags:
            data["holds_slot"] = not flags["outside_slots"]
        return data


# The flags of an entry carried before the enum; its run_id, cancel_reason and
# approval_for_attempt keep their meaning.
_LEGACY_FLAGS = frozenset({"finished", "finish_reported", "awaits_operators", "outside_slots"})


def legacy_lifecycle(data: Mapping[str, Any], flags: Mapping[str, Any]) -> Lifecycle:
    """Return the lifecycle that a pre-enum entry's flags describe.

    ``finished`` (its end recorded) and ``finish_reported`` (its final report came)
    mean CLOSING, or CANCELLING while only an operator's cancel ended it; an entry
    ``finished`` from before ``finish_reported`` existed was closing (it had reported).
    Unfinished: STARTING with no run id, else AWAITING_OPERATORS or RUNNING.
    """
    if flags.get("finished"):
        cancelling = data.get("cancel_reason") is not None and not flags.get("finish_reported")
        return Lifecycle.CANCELLING if cancelling else Lifecycle.CLOSING
    if data.get("run_id") is None:
        return Lifecycle.STARTING
    return Lifecycle.AWAITING_OPERATORS if flags.get("awaits_operators") else Lifecycle.RUNNING
