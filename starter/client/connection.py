"""The one connection helper shared by the worker, the facade and the CLI.

Settings follow Temporal's own conventions (``temporalio.envconfig``):
``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, TLS settings
and config-file profiles; the default is ``localhost:7233``, namespace ``default``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client, Interceptor
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.envconfig import ClientConfig
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode

from starter.client.runtime_exit import release_runtime_at_exit
from workflows.constants import SEARCH_ATTRIBUTES
from workflows.converter import data_converter

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TARGET = "localhost:7233"


async def connect(
    target_host: str | None = None,
    namespace: str | None = None,
    *,
    runtime: Runtime | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Client:
    """Connect with envconfig settings; explicit arguments win over the environment.

    Args:
        target_host: ``host:port``, else ``TEMPORAL_ADDRESS``, else localhost:7233.
        namespace: else ``TEMPORAL_NAMESPACE``, else ``default``.
        runtime: A runtime with telemetry (the worker's metrics), else the SDK's default.
        interceptors: Client (and so worker) interceptors, e.g. tracing.
    """
    release_runtime_at_exit()
    config = ClientConfig.load_client_connect_config()
    config.setdefault("target_host", DEFAULT_TARGET)
    if target_host:
        config["target_host"] = target_host
    if namespace:
        config["namespace"] = namespace
    return await Client.connect(
        **config, data_converter=data_converter, runtime=runtime, interceptors=interceptors
    )


BACKOFF_BUCKETS = [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400]


def metrics_runtime(bind_address: str) -> Runtime:
    """Return a runtime that serves Prometheus metrics at ``host:port`` (``/metrics``).

    Counters keep their names (``recovery_ended``, the SDK's ``temporal_*``), with
    ``_total`` added as Prometheus names counters; durations are in seconds.
    """
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=bind_address,
                counters_total_suffix=True,
                durations_as_seconds=True,
                # Backoffs run from a second to the 30-day cap: the SDK's default buckets
                # stop at 10 s, which would put every real backoff in +Inf.
                histogram_bucket_overrides={"recovery_backoff_seconds": BACKOFF_BUCKETS},
            )
        )
    )


async def ensure_search_attributes(client: Client) -> bool:
    """Register the four ``Recovery*`` search attributes where the server allows it.

    Returns True when all four exist afterwards. A server that refuses (a Cloud
    namespace without operator rights, say) is logged, not fatal: the operator
    registers them once with ``temporal operator search-attribute create``.
    """
    wanted = {key.name: _indexed_type(key.indexed_value_type) for key in SEARCH_ATTRIBUTES}
    try:
        missing = await _missing_search_attributes(client, wanted)
        if missing:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
            )
            logger.info("registered search attributes %s", ", ".join(sorted(missing)))
    except RPCError as err:
        if err.status is RPCStatusCode.ALREADY_EXISTS:
            return True
        logger.warning(
            "could not register search attributes %s (%s); register them with "
            "`temporal operator search-attribute create`",
            ", ".join(sorted(wanted)),
            err.message,
        )
        return False
    return True


async def _missing_search_attributes(
    client: Client, wanted: dict[str, IndexedValueType.ValueType]
) -> dict[str, IndexedValueType.ValueType]:
    """Return the wanted attributes the namespace lacks (all, where listing is unsupported)."""
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
    except RPCError as err:
        if err.status is RPCStatusCode.UNIMPLEMENTED:  # the time-skipping test server
            return dict(wanted)
        raise
    return {name: kind for name, kind in wanted.items() if name not in existing.custom_attributes}


def _indexed_type(kind: SearchAttributeIndexedValueType) -> IndexedValueType.ValueType:
    return IndexedValueType.ValueType(int(kind))


async def unless_not_found(call: Awaitable[T]) -> T | None:
    """Await ``call``; None when the server has no such workflow or schedule (``NOT_FOUND``).

    For a look that may find nothing: a recovery that never ran, a watch or schedule
    that was never made or was deleted meanwhile. Any other error is raised.
    """
    try:
        return await call
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
