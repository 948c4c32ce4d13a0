"""Reference Example 3: Custom Health Checks, with await added.

The reference shows only the functions; the imports and the ``asyncio.run``
guard are added so the file runs on its own. Run it with
``python -m examples.example_3_health_checks``. With
``RECOVERY_HEALTH_CHECK_MODULES=examples.example_3_health_checks`` set for this
process and the worker, ``check_api_health`` runs on the worker (durable);
without it, this process runs the check itself, for as long as it lives.
"""

import asyncio

import requests
from enhanced_agent_bus.recovery_orchestrator import (
    RecoveryOrchestrator,
    RecoveryPolicy,
    RecoveryStrategy,
)

def check_api_health():
    try:
        response = requests.get("http://api:8000/health", timeout=2)
        return response.status_code == 200
    except:
        return False

async def main():
    orchestrator = RecoveryOrchestrator()
    await orchestrator.start()

    policy = RecoveryPolicy(
        max_retry_attempts=5,
        initial_delay_ms=1000,
        health_check_fn=check_api_health,
    )

    await orchestrator.schedule_recovery(
        service_name="api_service",
        strategy=RecoveryStrategy.EXPONENTIAL_BACKOFF,
        priority=1,
        policy=policy,
    )

    # As in the reference: stops the namespace's coordinator and cancels every unfinished
    # recovery in it. Against a shared namespace, end with `await orchestrator.close()`.
    await orchestrator.stop()

if __name__ == "__main__":
    asyncio.run(main())
