"""The receiver's HTTP application: routes, the bearer token, bounded bodies, JSON errors.

| path | method | what |
| --- | --- | --- |
| ``/alertmanager`` | POST | Alertmanager's webhook body (version 4): a recovery per firing alert |
| ``/recoveries`` | POST | ``{"services": [name, …]}``: a recovery per service |
| ``/links/approve``, ``/links/cancel`` | GET, POST | a signed link: its confirmation page, its action |

The two ``POST`` doors need ``Authorization: Bearer <token>`` (compared in constant
time) and are refused with 401 before their body is read: nothing is scheduled. A
link carries its own authority (its signature), as a browser cannot add a header.
Bodies are bounded (413) and read within ``read_timeout`` (408); a connection that
sends no complete request line and headers within it is closed. Every refusal of a
``POST`` door is JSON: ``{"error": {"code", "message", "field"}}``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from temporalio.client import Client, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.common import MetricMeter
from temporalio.service import RPCError, RPCStatusCode

from activities.approval_links import LINKS_PATH, LinkRefused
from starter.client.coordinator_client import CoordinatorClient
from starter.receiver.bodies import RequestRefused, parse_alertmanager, parse_recoveries
from starter.receiver.config import ReceiverConfig
from starter.receiver.intake import answer_alertmanager, answer_recoveries
from starter.receiver.links import LinkDesk
from starter.receiver.metrics import ReceiverMetrics, refusal_outcome
from starter.receiver.pages import Page
from starter.receiver.scheduling import ReceiverAnswer

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[StreamResponse]]
_OUTCOME = web.RequestKey("outcome", str)
_CONFIG = web.AppKey("config", ReceiverConfig)
_COORDINATOR = web.AppKey("coordinator", CoordinatorClient)
_LINKS = web.AppKey("links", LinkDesk)
_METRICS = web.AppKey("metrics", ReceiverMetrics)
# Refusals that leave the body unread, or half read.
UNREAD_BODY = frozenset({401, 408, 413})
# How long a request may wait for Temporal (the client resends for about 20 s) before the
# receiver answers 503: Alertmanager and curl give up sooner than the SDK's own retries.
TEMPORAL_ANSWER_WITHIN = 15.0



class BindError(ValueError):
    """The receiver cannot listen where it was asked to (a port taken, an address not ours)."""


def build_app(
    client: Client,
    config: ReceiverConfig,
    *,
    meter: MetricMeter | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> web.Application:
    """Return the receiver's application, asking ``config``'s coordinator through ``client``."""
    app = web.Application(client_max_size=config.max_body, middlewares=[_answers])
    coordinator = CoordinatorClient(
        client, workflow_id=config.coordinator_workflow_id, task_queue=config.task_queue
    )
    app[_CONFIG] = config
    app[_COORDINATOR] = coordinator
    app[_LINKS] = LinkDesk(client, coordinator, config.link_secret, now)
    app[_METRICS] = ReceiverMetrics(meter or MetricMeter.noop)
    app.router.add_post("/alertmanager", _alertmanager)
    app.router.add_post("/recoveries", _recoveries)
    app.router.add_get(LINKS_PATH + "/{action}", _link_page)
    app.router.add_post(LINKS_PATH + "/{action}", _link_action)
    return app


@asynccontextmanager
async def running(app: web.Application, host: str, port: int) -> AsyncIterator[tuple[str, int]]:
    """Serve ``app`` on ``host:port`` (port 0: any free one); yield the address it listens on."""
    read_timeout = app[_CONFIG].read_timeout
    runner = web.AppRunner(
        app,
        access_log_class=_AccessLog,
        # From a connection's start (or its last answer) to a complete request line and
        # headers: a client that trickles them in is closed when this runs out.
        keepalive_timeout=read_timeout,
        # After a refusal that left the body unread, how long the rest is drained before
        # the connection closes (so the client still reads the answer).
        lingering_time=min(read_timeout, 2.0),
        # A compressed body would be bounded only after inflating it: refuse it as not JSON.
        auto_decompress=False,
        max_line_size=8190,
        max_field_size=8190,
        max_headers=64,
        shutdown_timeout=5.0,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        try:
            await site.start()
        except OSError as err:  # taken, or not an address of this host: bad input
            raise BindError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
        bound = runner.addresses[0]
        yield str(bound[0]), int(bound[1])
    finally:
        await runner.cleanup()


def _no_answer() -> str:
    """What a ``503`` says when the server did not answer in time (or the connection broke)."""
    return (
        f"the Temporal server did not answer within {TEMPORAL_ANSWER_WITHIN:.0f} s: whether "
        "anything was scheduled is unknown; sending the request again is safe (a recovery "
        "already queued or running is left as it is)"
    )


def _unavailable(err: RPCError) -> str:
    """What a ``503`` says: Temporal's refusal, and that sending again is safe."""
    what = (
        "could not be reached"
        if err.status is RPCStatusCode.UNAVAILABLE
        else f"refused the request ({err.status.name}: {err.message[:200]})"
    )
    return (
        f"the Temporal server {what}: whether anything was scheduled is unknown; sending the "
        "request again is safe (a recovery already queued or running is left as it is)"
    )


# -- the POST doors ------------------------------------------------------------------


async def _alertmanager(request: web.Request) -> web.Response:
    raw = await _authorized_body(request)
    answer = await answer_alertmanager(
        parse_alertmanager(raw), request.app[_CONFIG], request.app[_COORDINATOR]
    )
    return _answered(request, answer)


async def _recoveries(request: web.Request) -> web.Response:
    raw = await _authorized_body(request)
    answer = await answer_recoveries(
        parse_recoveries(raw), request.app[_CONFIG], request.app[_COORDINATOR]
    )
    return _answered(request, answer)


async def _authorized_body(request: web.Request) -> bytes:
    """Check the bearer token, then read the body within the size and time bounds."""
    config = request.app[_CONFIG]
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode("utf-8", "replace"), config.token
    ):
        raise RequestRefused(401, "a valid `Authorization: Bearer <token>` header is required")
    if request.content_length is not None and request.content_length > config.max_body:
        raise _too_large(config.max_body)
    try:
        return await asyncio.wait_for(request.read(), config.read_timeout)
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(config.max_body) from None
    except asyncio.TimeoutError:
        raise RequestRefused(408, f"the body did not arrive within {config.read_timeout:g} s") from None


def _too_large(limit: int) -> RequestRefused:
    return RequestRefused(413, f"the body is larger than {limit} bytes (RECOVERY_RECEIVER_MAX_BODY)")


def _answered(request: web.Request, answer: ReceiverAnswer) -> web.Response:
    request[_OUTCOME] = "scheduled" if answer.scheduled else "nothing_scheduled"
    return web.json_response(text=answer.model_dump_json())


# -- the links ------------------------------------------------------------------------


async def _link_page(request: web.Request) -> web.Response:
    page = await request.app[_LINKS].confirm(request.match_info["action"], request.query)
    request[_OUTCOME] = "confirmation"
    return page.response()


async def _link_action(request: web.Request) -> web.Response:
    # Whatever the body (SPEC §10): it is never read.
    page = await request.app[_LINKS].act(request.match_info["action"], request.query)
    request[_OUTCOME] = "approved" if request.match_info["action"] == "approve" else "cancelled"
    return page.response()


# -- every answer ---------------------------------------------------------------------


@web.middleware
async def _answers(request: web.Request, handler: Handler) -> StreamResponse:
    """Turn refusals into their JSON (or, for links, HTML) answers; count every request."""
    try:
        # Reading the body has its own clock; past it, only Temporal can be this slow.
        deadline = request.app[_CONFIG].read_timeout + TEMPORAL_ANSWER_WITHIN
        response = await asyncio.wait_for(handler(request), deadline)
    except TimeoutError:
        logger.warning("receiver: no answer from the Temporal server in time")
        response = _refusal(request, 503, _no_answer())
    except RequestRefused as err:
        response = _error(err.status, err.message, err.field)
        if err.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="recovery-receiver"'
        if err.status in UNREAD_BODY:  # the rest of it is not waited for: close
            response.force_close()
    except LinkRefused as err:
        title = "This link changes nothing" if err.status < 500 else "No answer yet"
        response = Page(err.status, title, (str(err),)).response()
    except web.HTTPException as err:  # no such path, or method
        response = _error(err.status, err.reason)
    except RPCError as err:
        logger.warning("receiver: the Temporal server did not take the request: %s", err)
        response = _refusal(request, 503, _unavailable(err))
    except WorkflowUpdateRPCTimeoutOrCancelledError:  # the connection failed under the update
        logger.warning("receiver: the Temporal server did not answer the update")
        response = _refusal(request, 503, _no_answer())
    except Exception:  # the edge of the server: answered and counted, never a bare 500
        logger.exception("receiver: %s %s failed", request.method, request.path)
        response = _refusal(request, 500, "the receiver failed on this request: see its log")
    outcome = request.get(_OUTCOME) if response.status < 400 else None
    request.app[_METRICS].request(request.path, outcome or refusal_outcome(response.status))
    return response


def _refusal(request: web.Request, status: int, message: str) -> web.Response:
    """A refusal as the door speaks: an HTML page for a link, JSON for the rest."""
    if request.path.startswith(LINKS_PATH + "/"):
        return Page(status, "Not now", (message,)).response()
    return _error(status, message)


def _error(status: int, message: str, field: str | None = None) -> web.Response:
    code = {401: "unauthorized", 413: "too_large", 408: "timeout", 503: "unavailable"}.get(
        status, "bad_field" if field else "bad_request" if status < 500 else "error"
    )
    error: dict[str, object] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return web.json_response({"error": error}, status=status)


class _AccessLog(AbstractAccessLogger):
    """One line per request without its query: a link's query is its signature."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %.3fs', request.remote, request.method, request.path, response.status, time
        )
