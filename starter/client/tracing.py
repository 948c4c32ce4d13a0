"""OpenTelemetry tracing of recoveries, through the SDK's contrib interceptor.

Off by default. ``recovery-worker --tracing`` (or ``RECOVERY_TRACING=1``) adds
``temporalio.contrib.opentelemetry.TracingInterceptor`` to the worker's client, so
every workflow, activity, signal and update becomes a span, linked across the
coordinator, its recoveries and their activities. Spans go to the global tracer
provider: configure it as OpenTelemetry says (``opentelemetry-instrument``, or in
code); if none is configured and the OTLP exporter is installed, one exporting to
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set up here.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from activities.settings import RecoverySettings

if TYPE_CHECKING:  # imported when tracing is on, not by every worker
    from opentelemetry.trace import Tracer
    from temporalio.client import Interceptor

logger = logging.getLogger(__name__)



def tracing_from_env() -> bool:
    """Return True when ``RECOVERY_TRACING`` is set to 1, true or yes."""
    tracing: bool = RecoverySettings.read("tracing")
    return tracing


def tracing_interceptors(tracer: Tracer | None = None) -> list[Interceptor]:
    """Return the interceptor that traces workflows and activities.

    Args:
        tracer: Spans go here; else the global provider's (set up if there is none).
    """
    from temporalio.contrib.opentelemetry import TracingInterceptor

    if tracer is None:
        _ensure_provider()
    return [TracingInterceptor(tracer)]


def _ensure_provider() -> None:
    """Export to OTLP when nothing else configured a provider and the exporter exists."""
    from opentelemetry import trace

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return  # configured already (opentelemetry-instrument, or the application)
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        logger.warning(
            "tracing on, but no tracer provider is configured and the OTLP exporter is not "
            "installed (pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http): "
            "spans are dropped"
        )
        return
    provider = TracerProvider(resource=Resource.create({"service.name": "recovery-worker"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318 (the default)"
    logger.info("tracing: exporting spans over OTLP/HTTP to %s", endpoint)
