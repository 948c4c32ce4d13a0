"""Reference Quick Start ("Basic Usage"), with await added."""

import asyncio
from enhanced_agent_bus.recovery_orchestrator import (
    RecoveryOrchestrator,
    RecoveryStrategy,
)

async def main():
    # Create orchestrator
    orchestrator = RecoveryOrchestrator()

    # Start orchestrator
    await orchestrator.start()

    # Schedule recovery
    await orchestrator.schedule_recovery(
        service_name="policy_service",
        strategy=RecoveryStrategy.EXPONENTIAL_BACKOFF,
        priority=1  # Higher priority (lower number)
    )

    # Check status
    status = await orchestrator.get_recovery_status()
    print(f"Active recoveries: {status['active_recoveries']}")

    # Stop orchestrator
    # As in the reference: stops the namespace's coordinator and cancels every unfinished
    # recovery in it. Against a shared namespace, end with `await orchestrator.close()`.
    await orchestrator.stop()

asyncio.run(main())
