"""Reference Example 2: Multiple Services with Priorities, with await added.

The reference shows only ``main()``; the imports and the ``asyncio.run`` guard
are added so the file runs on its own. One line is added to its loop: it says
what it waits for (``say_what_we_wait_for``), because ``active_recoveries``
counts every unfinished recovery of the namespace, not only the five scheduled
here, and a MANUAL one left awaiting an operator (by ``recoveryctl demo``, say)
would otherwise keep the loop waiting silently for ever.
"""

import asyncio
import os
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
    said = None
    while True:
        status = await orchestrator.get_recovery_status()
        if status['active_recoveries'] == 0:
            break
        said = say_what_we_wait_for(status, {name for name, _ in services}, said)
        await asyncio.sleep(1)

    # As in the reference: stops the namespace's coordinator and cancels every unfinished
    # recovery in it. Against a shared namespace, end with `await orchestrator.close()`.
    await orchestrator.stop()


def say_what_we_wait_for(status, ours, said):
    """Print the unfinished recoveries the loop waits for, when they change; return them.

    Args:
        status: ``get_recovery_status()``'s answer.
        ours: The services this example scheduled.
        said: What the previous call printed (``None`` at first).

    Returns:
        What this call describes, to pass back as ``said`` next time.
    """
    waiting = {
        name: entry["state"]
        for name, entry in status["services"].items()
        if entry["state"] != "idle"  # a policy only: not counted in active_recoveries
    }
    if waiting == said:
        return said
    namespace = os.environ.get("TEMPORAL_NAMESPACE") or "default"
    listed = ", ".join(f"{name} ({state})" for name, state in sorted(waiting.items()))
    count = status["active_recoveries"]
    print(
        f"Waiting for {count} unfinished {'recovery' if count == 1 else 'recoveries'} "
        f"in namespace '{namespace}': {listed or 'none listed yet'}",
        flush=True,
    )
    for name, state in sorted(waiting.items()):
        if name in ours:
            continue
        clear = f"recoveryctl cancel {name}"
        if state == "awaiting_manual":
            clear = f"recoveryctl approve {name} --operator you, or {clear}"
        print(
            f"  {name} was not scheduled by this example; it waits for it too ({state}). "
            f"Clear it with: {clear}",
            flush=True,
        )
    return waiting

if __name__ == "__main__":
    asyncio.run(main())
