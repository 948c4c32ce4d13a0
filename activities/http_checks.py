"""HTTP health checks, imported by ``activities.health_checks`` on the first one.

A module of their own so that a worker imports httpx (and the click, rich and pygments
its command line pulls in, about 6 MB) only once it runs an HTTP check. Each hop's target
is vetted by ``activities.target_vetting``; redirects are followed at most ``MAX_REDIRECTS``
times, headers read from the environment go to the check's own origin only, and at most
``MAX_BODY_BYTES`` of an answer are read (none of it reported).
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

from activities.health_check_specs import (
    HttpHealthCheck,
    hide_url_credentials,
    url_has_credentials,
)
from activities.redaction import redact
from activities.target_vetting import (
    NOT_ALLOWED,
    CheckFailed,
    CheckProgress,
    TargetAllowList,
    resolve_target,
)

# A health answer is small; reading more than this is a fault, not a health check.
MAX_BODY_BYTES = 1024 * 1024
MAX_REDIRECTS = 5
SECRET_MISSING = "HealthCheckSecretMissing"

# What a header value from the environment may hold: visible ASCII, with spaces and tabs
# inside only (RFC 9110; httpx refuses a value that starts or ends with one, quoting it).
_HEADER_VALUE = re.compile(r"^[\x20-\x7e\t]+$")


async def http_check(
    check: HttpHealthCheck, allow: TargetAllowList, progress: CheckProgress
) -> tuple[bool, str]:
    """GET the check's URL (redirects followed and vetted); pass on an expected status."""
    try:
        url = httpx.URL(check.url)
    except httpx.InvalidURL as err:  # the model's rules are looser than the client's parser
        return False, f"GET {hide_url_credentials(check.url)}: invalid URL ({err})"
    if url_has_credentials(check.url) or url.userinfo:
        raise ApplicationError(
            f"http health check of {hide_url_credentials(check.url)!r} refused: its URL "
            "carries credentials; pass them with headers_from_env (see docs/security.md)",
            type=NOT_ALLOWED,
            non_retryable=True,
        )
    secrets = _secret_headers(check.headers_from_env)
    try:
        status, redirects = await _get(url, check.expected_status, secrets, allow, progress)
    except CheckFailed as failed:
        return False, redact(f"GET {check.url}: {failed}", secrets.values())
    after = f" after {redirects} redirect(s)" if redirects else ""
    return status in check.expected_status, redact(f"GET {check.url} answered {status}{after}")


def _secret_headers(headers_from_env: Mapping[str, str]) -> dict[str, str]:
    """Read each header's value from the worker's environment.

    Raises:
        ApplicationError: a variable is unset, empty or unfit for a header; the
            message names the variable, never its value.
    """
    headers: dict[str, str] = {}
    for header, variable in headers_from_env.items():
        value = os.environ.get(variable, "")
        problem = _unfit_header_value(variable, value)
        if problem:
            raise ApplicationError(
                f"health check header {header!r} reads environment variable {variable} on "
                f"the worker, which {problem}",
                type=SECRET_MISSING,
                non_retryable=True,
            )
        headers[header] = value
    return headers


def _unfit_header_value(variable: str, value: str) -> str | None:
    """Say what makes the variable's value unusable as a header (never quoting it), or None."""
    if variable not in os.environ:
        return "is not set"
    if not value:
        return "is empty"
    if not _HEADER_VALUE.match(value):
        return "holds characters a header cannot carry (line breaks, control or non-ASCII)"
    if value != value.strip(" \t"):
        return (
            "starts or ends with a space or tab, which a header cannot carry (a stray tab "
            "or space from the file it was read from?): trim the value"
        )
    return None


async def _get(
    url: httpx.URL,
    expected_status: list[int],
    secrets: dict[str, str],
    allow: TargetAllowList,
    progress: CheckProgress,
) -> tuple[int, int]:
    """Return the final status and how many redirects led to it.

    A redirect is followed unless its own status is one the check expects; the
    secret headers go only to the check's own origin.
    """

    async def trace(event: str, info: Mapping[str, Any]) -> None:
        progress.phase = _PHASES.get(event.rsplit(".", 1)[0].split(".", 1)[-1], progress.phase)

    origin = _origin(url)
    async with httpx.AsyncClient(
        transport=_VettedTransport(allow, progress), trust_env=False, timeout=None
    ) as client:
        request = client.build_request("GET", url, headers=secrets, extensions={"trace": trace})
        for redirects in range(MAX_REDIRECTS + 1):
            try:
                response = await client.send(request, stream=True)
            except httpx.HTTPError as err:
                raise CheckFailed(_network_cause(err)) from None
            try:
                follow = response.next_request
                if follow is None or response.status_code in expected_status:
                    await _read_bounded(response, progress)
                    return response.status_code, redirects
            finally:
                await response.aclose()
            if _origin(follow.url) != origin:
                for header in secrets:
                    follow.headers.pop(header, None)
            request = follow
    raise CheckFailed(f"too many redirects (more than {MAX_REDIRECTS})")


# httpcore's trace events (without their ".started"/".complete"), as a timeout names them.
_PHASES = {
    "connect_tcp": "connecting",
    "start_tls": "in the TLS handshake",
    "send_request_headers": "sending the request",
    "send_request_body": "sending the request",
    "receive_response_headers": "waiting for the answer",
}


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    """Return scheme, host and port: where a header may be sent."""
    return url.scheme, url.host, _port(url)


def _port(url: httpx.URL) -> int:
    """Return the URL's port, its scheme's default when it names none."""
    return url.port or (443 if url.scheme == "https" else 80)


async def _read_bounded(response: httpx.Response, progress: CheckProgress) -> None:
    """Read the answer's body, at most ``MAX_BODY_BYTES`` of it, and discard it.

    A health check passes only when the whole answer arrived in time; a body
    larger than any health answer is a fault, and its bytes are never reported.
    """
    progress.phase = "reading the body"
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise CheckFailed(
            f"answered {response.status_code} with a body too large: {declared} bytes "
            f"announced, a health check reads at most {MAX_BODY_BYTES}"
        )
    received = 0
    try:
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received > MAX_BODY_BYTES:
                raise CheckFailed(
                    f"answered {response.status_code} with a body too large: more than "
                    f"{MAX_BODY_BYTES} bytes, the most a health check reads"
                )
    except httpx.HTTPError as err:
        raise CheckFailed(f"answered {response.status_code}, then {_network_cause(err)}") from None


class _VettedTransport(httpx.AsyncBaseTransport):
    """Send each request (each redirect hop too) to an address vetted by the rules.

    The request goes to the vetted address itself, with the original ``Host``
    header and TLS server name, so certificates are still checked against the name.
    """

    def __init__(self, allow: TargetAllowList, progress: CheckProgress) -> None:
        self._allow = allow
        self._progress = progress
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Vet the request's scheme and target, then send it to the vetted address."""
        url = request.url
        if url.scheme not in ("http", "https"):
            raise CheckFailed(f"redirected to a {url.scheme!r} URL, which a check never follows")
        if url.userinfo:
            raise CheckFailed("redirected to a URL with credentials, which a check never follows")
        self._progress.phase = f"resolving {url.host}"
        addresses = await resolve_target(url.host, _port(url), self._allow)
        extensions = dict(request.extensions)
        if url.scheme == "https":
            extensions["sni_hostname"] = url.host
        for address in addresses[:-1]:  # as a browser does: the next address if one refuses
            try:
                return await self._send_to(address, request, extensions)
            except httpx.ConnectError:
                continue
        return await self._send_to(addresses[-1], request, extensions)

    async def _send_to(
        self, address: str, request: httpx.Request, extensions: dict[str, Any]
    ) -> httpx.Response:
        """Send ``request`` to ``address``, keeping its ``Host`` header and TLS server name."""
        pinned = httpx.Request(
            request.method,
            request.url.copy_with(host=address),
            headers=request.headers,
            stream=request.stream,
            extensions=extensions,
        )
        return await self._inner.handle_async_request(pinned)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._inner.aclose()


def _network_cause(err: BaseException) -> str:
    """Name what went wrong on the wire, in the words an operator searches for."""
    chain = _causes(err)
    if any(isinstance(e, ConnectionResetError) for e in chain) or "reset by peer" in str(err):
        return "connection reset by the server"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection refused"
    certificate = next((e for e in chain if isinstance(e, ssl.SSLCertVerificationError)), None)
    if certificate is not None:
        return f"TLS certificate not accepted: {certificate.verify_message}"
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return f"TLS handshake failed: {err}"
    if isinstance(err, httpx.RemoteProtocolError):
        return f"the server broke the HTTP exchange: {err}"
    return f"{type(err).__name__}: {err}"


def _causes(err: BaseException) -> list[BaseException]:
    """Return ``err`` and every exception it was raised from or during, outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


