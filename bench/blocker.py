"""A recovery that holds a coordinator's only slot, so that everything scheduled after it queues.

Its TCP check hits a closed loopback port, so its first attempt fails at once and
it then waits an hour in backoff: the slot stays taken for the whole bench.
"""

from __future__ import annotations

from bench.environment import Bench
from bench.scheduling import tcp_policy
from starter.client.orchestrator import RecoveryOrchestrator

HOUR_MS = 3_600_000


async def hold_the_slot(bench: Bench, orchestrator: RecoveryOrchestrator, figure: str) -> None:
    """Schedule the blocker first (priority 0) on a coordinator with one slot."""
    await orchestrator.schedule_recovery(
        f"blocker-{figure}-{bench.run_id}",
        priority=0,
        policy=tcp_policy(bench.closed_port, initial_delay_ms=HOUR_MS, max_delay_ms=HOUR_MS),
    )
