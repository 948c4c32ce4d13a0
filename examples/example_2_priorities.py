"""Reference Example 2: Multiple Services with Priorities, with await added.

The reference shows only ``main()``; the imports and the ``asyncio.run`` guard
are added so the file runs on its own.
"""

import asyncio
from enhanced_agent_bus.recovery_orchestrator import (
    RecoveryOrchestrator,
    RecoveryStrategy,
)

async def main():
    orchestrator = RecoveryOrchestrator()
    await orchestrator.start()

    # Schedule multiple services
    services = [
        ("auth_service", 1),       # Highest priority
        ("api_gateway", 2),
        ("database", 3),
        ("cache", 4),
        ("metrics", 10),           # Lowest priority
    ]

    for service, priority in services:
        await orchestrator.schedule_recovery(
            service_name=service,
            strategy=RecoveryStrategy.EXPONENTIAL_BACKOFF,
            priority=priority,
        )

    # Monitor status
    while True:
        status = await orchestrator.get_recovery_status()
        if status['active_recoveries'] == 0:
            break
        await asyncio.sleep(1)

    # As in the reference: stops the namespace's coordinator and cancels every unfinished
    # recovery in it. Against a shared namespace, end with `await orchestrator.close()`.
    await orchestrator.stop()

if __name__ == "__main__":
    asyncio.run(main())
