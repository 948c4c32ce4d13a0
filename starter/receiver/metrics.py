"""The receiver's metric: requests by path and outcome (``recovery_receiver_requests``).

Counted through the Temporal runtime's metric meter, as the worker's metrics are, so
``recoveryctl serve --metrics-bind HOST:PORT`` serves it in Prometheus' format
(``recovery_receiver_requests_total``) beside the SDK's client metrics.

| label | values |
| --- | --- |
| ``path`` | ``alertmanager``, ``recoveries``, ``links``, ``other`` |
| ``outcome`` | ``scheduled`` (at least one recovery asked for), ``nothing_scheduled``, ``confirmation`` (a link's page), ``approved``, ``cancelled``; refusals by kind: ``malformed``, ``unauthorized``, ``forbidden``, ``not_found``, ``not_allowed``, ``timeout``, ``stale``, ``gone``, ``too_large``, ``unavailable``, ``error`` |
"""

from __future__ import annotations

from temporalio.common import MetricMeter

REQUESTS = "recovery_receiver_requests"

# A refusal's outcome, by its HTTP status.
REFUSALS = {
    400: "malformed",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "not_allowed",
    408: "timeout",
    409: "stale",
    410: "gone",
    413: "too_large",
    422: "malformed",
    503: "unavailable",
}


class ReceiverMetrics:
    """Count the receiver's requests on ``meter`` (the SDK's no-op meter counts nothing)."""

    def __init__(self, meter: MetricMeter) -> None:
        self._requests = meter.create_counter(
            REQUESTS, "requests to the alert receiver, by path and outcome"
        )

    def request(self, path: str, outcome: str) -> None:
        """Count one answered request."""
        self._requests.add(1, {"path": path_label(path), "outcome": outcome})


def path_label(path: str) -> str:
    """Return the ``path`` label of a request path: a handful of values, whatever is asked."""
    if path in ("/alertmanager", "/recoveries"):
        return path[1:]
    return "links" if path.startswith("/links/") else "other"


def refusal_outcome(status: int) -> str:
    """Return the ``outcome`` label of a refused request (``error`` for a status not listed)."""
    return REFUSALS.get(status, "error")
