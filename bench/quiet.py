"""A Temporal runtime that logs errors only.

Under the load the bench creates, the SDK retries refused queries and says so at
WARN on stdout, hundreds of times a run; the bench counts refusals itself, and the
table must stay readable.
"""

from __future__ import annotations

from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter


def quiet_runtime() -> Runtime:
    """Return a runtime whose SDK core logs only errors."""
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
        )
    )
