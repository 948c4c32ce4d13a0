"""Reference Example 1: Basic Recovery, with await added."""

import asyncio
from enhanced_agent_bus.recovery_orchestrator import (
    RecoveryOrchestrator,
    RecoveryStrategy,
)

async def main():
    orchestrator = RecoveryOrchestrator()
    await orchestrator.start()

    await orchestrator.schedule_recovery(
        service_name="policy_service",
        strategy=RecoveryStrategy.EXPONENTIAL_BACKOFF,
        priority=1,
    )

    # Wait for recovery
    await asyncio.sleep(5)

    status = await orchestrator.get_recovery_status()
    print(status)

    # As in the reference: stops the namespace's coordinator and cancels every unfinished
    # recovery in it. Against a shared namespace, end with `await orchestrator.close()`.
    await orchestrator.stop()

asyncio.run(main())
