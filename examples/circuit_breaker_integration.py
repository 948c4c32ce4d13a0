"""Reference "Integration with Circuit Breakers", with await added.

The reference's loop, as written, over the breakers services really run:
``CircuitBreakerRegistry`` reads the shared store (``RECOVERY_CIRCUIT_STORE``) that
pybreaker breakers made with ``starter.breakers.breaker`` write to. The circuit
watch does the same on a schedule; this is the loop for code that wants to do it
itself. Run it with ``python -m examples.circuit_breaker_integration``.
"""

import asyncio

from enhanced_agent_bus.recovery_orchestrator import RecoveryOrchestrator, RecoveryStrategy
from starter.breakers import CircuitBreakerRegistry, circuit_breaker_health_check


async def main():
    orchestrator = RecoveryOrchestrator()
    await orchestrator.start()

    # Circuit breaker opens due to failures
    circuit_registry = CircuitBreakerRegistry()
    states = circuit_registry.get_all_states()

    # Detect open circuits
    for service_name, state in states.items():
        if state['state'] == 'open':
            # Schedule automatic recovery
            await orchestrator.schedule_recovery(
                service_name=service_name,
                strategy=RecoveryStrategy.EXPONENTIAL_BACKOFF,
                priority=1,
            )
            print(f"Scheduled recovery for {service_name}")

    health = circuit_breaker_health_check()
    print(f"Overall health: {health['overall_health']}; open: {health['open_circuits']}")
    await orchestrator.close()


if __name__ == "__main__":
    asyncio.run(main())
