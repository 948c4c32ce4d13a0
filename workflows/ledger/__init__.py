"""The coordinator's rules, one concern per module, composed by ``RecoveryLedger``.

Each module is pure: synchronous functions over the carried ``CoordinatorState``
(or parts of it) and the time passed in, no Temporal I/O, so each is unit-tested on
its own (``tests/workflows/ledger/``) and, inside the workflow, no state change ever
straddles an ``await``.

- ``lifecycle``: an active recovery's states and the moves between them.
- ``queue``: the queue, its order, the slots, starting and taking.
- ``budget``: the carried state's size budget and ``queue_limit``.
- ``storm_guard``: attempts per hour, and what it holds back.
- ``operator_word``: pauses, cancel holds, failure cool-downs, stale hand-overs.
- ``automation``: how automation's requests are scheduled, or left alone and why.
- ``cancels``: an operator's cancel, and shutdown.
- ``history``: recent history, finished runs, rejections.
- ``reports``: children's reports, settling and reconciling runs.
- ``view``: the status document (SPEC §6) and what holds automation back.
- ``clock``: how a time is shown to an operator in their reasons.

The dependency rules (``graphlib``) are ``workflows.dependencies``, shared with the
services file. Nothing is imported here: ``coordinator_models`` imports the lifecycle.
"""
