"""Everything a client runs, in three rooms.

- ``starter.client``: the connection, the typed coordinator client, the
  ``RecoveryOrchestrator`` facade and what it stands on (recoveries, the status
  cache, the circuit watch's controls, deployments, the services file, tracing).
- ``starter.cli``: ``recoveryctl``, click commands with rich output.
- ``starter.devtools``: the embedded dev server (``recoveryctl dev``) and the live demo.

``starter.breakers`` is what services import to guard their calls (SPEC §9).
``starter.RecoveryOrchestrator`` is the facade (SPEC §7), imported on first use:
``recoveryctl`` and a service importing ``starter.breakers`` need none of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starter.client.orchestrator import RecoveryOrchestrator

__all__ = ["RecoveryOrchestrator"]


def __getattr__(name: str) -> Any:
    if name == "RecoveryOrchestrator":
        from starter.client.orchestrator import RecoveryOrchestrator

        return RecoveryOrchestrator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
