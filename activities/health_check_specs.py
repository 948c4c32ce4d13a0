"""Health checks as data.

A function cannot travel into a workflow, so a health check is described by a small
pydantic model (a union on ``kind``) and run by the ``run_health_check`` activity.
These models live here, in the ground floor, because they are an activity's input;
``workflows.models`` imports them for ``RecoveryPolicy.health_check``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Annotated, Any, Literal, Union
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Re-exported: callers import the prefix and hide_url_credentials from here.
from activities.redaction import SECRET_ENV_PREFIX as SECRET_ENV_PREFIX
from activities.redaction import hide_url_credentials as hide_url_credentials
from activities.redaction import redact_patterns

_CALLABLE_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
MAX_CALLABLE_REF = 500
# An HTTP header name (RFC 9110 token) and an environment variable name.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,100}$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,199}$")
# Headers the check sets itself: a value from the environment must not replace them.
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})

# The activity a ``hosted`` check runs, served by the process that scheduled the recovery.
HOSTED_CHECK_ACTIVITY = "run_hosted_health_check"

# The only environment variables a check may name: the operator exposes a secret to
# health checks by giving its variable this prefix, and nothing else can be read.
# (SECRET_ENV_PREFIX, "RECOVERY_SECRET_", lives in activities.redaction: their values are
# masked in every text the product writes.)
MAX_SECRET_HEADERS = 10

_accepting_recorded = ContextVar("accepting_recorded_checks", default=False)


@contextmanager
def accepting_recorded_checks() -> Iterator[None]:
    """Decode checks recorded before the URL rules existed without refusing them.

    A running recovery's recorded input or a coordinator's carried state may hold an
    http check whose URL carries credentials (accepted before these rules). Refusing
    it while decoding would fail a replay or a continue-as-new; the worker refuses
    to run it instead, so the secret is never sent and the attempt fails clearly.
    """
    token = _accepting_recorded.set(True)
    try:
        yield
    finally:
        _accepting_recorded.reset(token)


class _CheckBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_ms: int = Field(default=2000, gt=0, le=300_000)

    @model_validator(mode="before")
    @classmethod
    def _numbers_are_not_booleans(cls, data: object) -> object:
        """Refuse ``true`` where a number belongs: lax validation reads it as 1 (1 ms, port 1)."""
        if not isinstance(data, dict) or _accepting_recorded.get():
            return data
        for field in ("timeout_ms", "port", "host_wait_ms"):
            if isinstance(data.get(field), bool):
                raise ValueError(f"{field} must be a number, not a boolean")
        statuses = data.get("expected_status")
        if isinstance(statuses, list) and any(isinstance(s, bool) for s in statuses):
            raise ValueError("expected_status must list status codes, not booleans")
        return data


class HttpHealthCheck(_CheckBase):
    """GET ``url``; healthy when the answer's status is one of ``expected_status``.

    A check is workflow input, stored in clear in the workflow's history: a secret
    never goes in it. ``headers_from_env`` maps a header name to the name of an
    environment variable of the worker (``RECOVERY_SECRET_…``) whose value the
    worker sends in that header; the history holds only the variable's name.
    """

    # Pydantic's own error text would otherwise quote the refused URL, password and all.
    model_config = ConfigDict(hide_input_in_errors=True)

    kind: Literal["http"] = "http"
    url: str = Field(max_length=2048)
    expected_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=lambda: [200], min_length=1, max_length=50
    )
    # Left out of the JSON while empty, so checks that use none travel as they did.
    headers_from_env: dict[str, str] = Field(
        default_factory=dict, max_length=MAX_SECRET_HEADERS, exclude_if=lambda value: not value
    )

    @model_validator(mode="before")
    @classmethod
    def _no_credentials_in_url(cls, data: Any) -> Any:
        """Refuse ``user:password@`` in the URL, without quoting it.

        A model-level check: the error's input is then the whole check, never the
        URL string that error formatters quote (``(got 'http://admin:…')``).
        """
        url = data.get("url") if isinstance(data, dict) else None
        if isinstance(url, str) and not _accepting_recorded.get():
            if url_has_credentials(url):
                raise ValueError(CREDENTIALS_REFUSED)
            secret = secret_query_parameter(url)
            if secret is not None:
                raise ValueError(QUERY_SECRET_REFUSED.format(name=secret))
        return data

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        """Refuse any scheme but http(s): the check makes GET requests, never reads files."""
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme not in ("http", "https") or not url[len(scheme) :].startswith("://"):
            raise ValueError("url must start with http:// or https://")
        if not _accepting_recorded.get() and not _url_host(url):
            raise ValueError("url has no host name or address after the scheme")
        return url

    @field_validator("headers_from_env")
    @classmethod
    def _secret_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        """Allow only real header names and ``RECOVERY_SECRET_`` variables.

        Without the prefix, any input could make the worker send its own secrets
        (``TEMPORAL_API_KEY``, cloud keys) to a URL of the input's choosing.
        """
        for header, variable in headers.items():
            if not _HEADER_NAME.match(header):
                shown = redact_patterns(repr(header[:100]))
                raise ValueError(f"header name {shown} is not a valid HTTP header name")
            if header.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {header!r} is set by the check itself")
            if not (_ENV_NAME.match(variable) and variable.startswith(SECRET_ENV_PREFIX)):
                # Never quote the value: the likeliest mistake is the secret itself given
                # where its variable's name belongs, and a refusal is logged and kept.
                raise ValueError(
                    f"header {header!r}: headers_from_env must name an environment variable "
                    f"of the worker that starts with {SECRET_ENV_PREFIX} (A-Z, 0-9, _), never "
                    f"hold the secret itself; its value {_what_is_wrong(variable)} (not "
                    "repeated here, in case it is a secret)"
                )
        return headers

    @property
    def target(self) -> str:
        """Name the check by what it probes (activity summaries, the Web UI's details)."""
        return f"http GET {hide_url_credentials(self.url)}"


# The message names the way in, never the credentials it refuses.
CREDENTIALS_REFUSED = (
    "url must not carry credentials (user:password@): a check is stored in clear in the "
    "workflow's history. Put the secret in an environment variable of the worker whose name "
    f"starts with {SECRET_ENV_PREFIX}, and name it in headers_from_env, e.g. "
    f"headers_from_env={{'Authorization': '{SECRET_ENV_PREFIX}MY_SERVICE'}} with the variable "
    "holding 'Basic <base64 of user:password>' or 'Bearer <token>'"
)


# Query (or fragment) parameter names that carry credentials: any name containing one of
# these words, once lower-cased, percent-decoded and stripped of - _ . [ ], or one of the
# short names exactly.
_SECRET_QUERY_WORDS = (
    "token", "secret", "password", "passwd", "apikey", "accesskey", "secretkey",
    "signature", "credential", "jwt", "sessionid", "authorization", "privatekey",
)
_SECRET_QUERY_NAMES = frozenset({"key", "sig", "auth", "pwd", "pass", "code", "session"})
QUERY_SECRET_REFUSED = (
    "url must not carry a credential in its query string (parameter {name!r}): a check is "
    "stored in clear in the workflow's history. Put the secret in an environment variable "
    f"of the worker whose name starts with {SECRET_ENV_PREFIX} and send it as a header "
    "with headers_from_env"
)


def secret_query_parameter(url: str) -> str | None:
    """Return the first query or fragment parameter whose name says it carries a credential."""
    after = url.split("?", 1)[1] if "?" in url else ""
    fragment = url.split("#", 1)[1] if "#" in url else ""
    for part in re.split(r"[&;#]", f"{after}&{fragment}"):
        name = unquote(part.split("=", 1)[0])
        plain = re.sub(r"[-_.\[\]\s]", "", name.lower())
        if plain in _SECRET_QUERY_NAMES or any(word in plain for word in _SECRET_QUERY_WORDS):
            return name[:40]
    return None


def url_has_credentials(url: str) -> bool:
    """Return True when the URL's authority carries a user name or password."""
    return "@" in _authority(url)


def _what_is_wrong(variable: str) -> str:
    """Say why ``variable`` is not a secret variable's name, without quoting any of it."""
    if not variable.startswith(SECRET_ENV_PREFIX):
        return f"does not start with {SECRET_ENV_PREFIX}"
    if len(variable) > 200:
        return f"is {len(variable):,} characters long (at most 200)"
    return "holds characters other than A-Z, 0-9 and _"


# hide_url_credentials (from activities.redaction, where the one rule lives) replaces
# the whole user:password@ of every URL in a text with ***@: a credentialed check URL
# is refused, and its refusal repeats neither part.


def _authority(url: str) -> str:
    """Return what stands between ``scheme://`` and the path (``user:pw@host:port``)."""
    # Cut only at / ? #, not at a backslash (which some parsers read as a slash): the
    # longer authority errs on the side of finding credentials.
    rest = url.split("://", 1)[1] if "://" in url else ""
    return re.split(r"[/?#]", rest, maxsplit=1)[0]


def _url_host(url: str) -> str:
    """Return the host of an http(s) URL, or an empty string when it has none."""
    try:
        return urlsplit(url).hostname or ""
    except ValueError:  # e.g. an unbalanced "[" in an IPv6 literal
        return ""


class TcpHealthCheck(_CheckBase):
    """Open a TCP connection to ``host:port``; healthy when it connects."""

    kind: Literal["tcp"] = "tcp"
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(ge=1, le=65535)

    @property
    def target(self) -> str:
        """Name the check by what it probes (activity summaries, the Web UI's details)."""
        return f"tcp connect {self.host}:{self.port}"


class CallableHealthCheck(_CheckBase):
    """Call ``module:function`` on the worker; healthy when it returns a truthy value.

    Runs only when ``module`` is on the worker's ``RECOVERY_HEALTH_CHECK_MODULES``
    allow-list: a workflow input must never be able to import arbitrary code.
    """

    kind: Literal["callable"] = "callable"
    ref: str

    @field_validator("ref")
    @classmethod
    def _module_colon_function(cls, ref: str) -> str:
        # The length is checked here, not with Field(max_length=...), so that a longer
        # ref recorded before the bound still decodes on replay (its import then fails).
        if len(ref) > MAX_CALLABLE_REF and not _accepting_recorded.get():
            raise ValueError(f"ref is {len(ref):,} characters long: at most {MAX_CALLABLE_REF}")
        if not _CALLABLE_REF.match(ref):
            raise ValueError("ref must look like 'package.module:function'")
        return ref

    @property
    def module(self) -> str:
        """Return the module part of ``ref``."""
        return self.ref.split(":", 1)[0]

    @property
    def target(self) -> str:
        """Name the check by what it probes (activity summaries, the Web UI's details)."""
        return f"call {self.ref} on the worker"


class HostedHealthCheck(_CheckBase):
    """Call a function that lives in the process that scheduled the recovery.

    Any Python callable (a lambda, a closure, a bound method, sync or async) can
    be a health check this way: the facade's in-process worker serves the
    ``run_hosted_health_check`` activity on ``task_queue``, and ``function``
    names the callable in that process. Not durable: if the host process is
    gone, the attempt fails once ``host_wait_ms`` has passed without a pick-up
    (the activity's schedule-to-start timeout), naming ``host``.
    """

    kind: Literal["hosted"] = "hosted"
    task_queue: str = Field(min_length=1, max_length=200)
    function: str = Field(min_length=1, max_length=200)
    host: str = Field(min_length=1, max_length=200)
    host_wait_ms: int = Field(default=10_000, gt=0, le=300_000)

    @property
    def target(self) -> str:
        """Name the check by what it probes (activity summaries, the Web UI's details)."""
        return f"hosted check {self.function} on {self.host}"


HealthCheck = Annotated[
    Union[HttpHealthCheck, TcpHealthCheck, CallableHealthCheck, HostedHealthCheck],
    Field(discriminator="kind"),
]


class HealthCheckInput(BaseModel):
    """Input of the ``run_health_check`` activity."""

    service_name: str
    check: HealthCheck


# What a check's detail may take: it goes into history, reports and the status. A check
# that raises with a megabyte of text must not carry it there (the report would pass
# Temporal's 2 MB and the recovery's workflow task would fail for ever).
MAX_DETAIL = 500


def clip_detail(text: str) -> str:
    """Return a check's detail cut to ``MAX_DETAIL`` characters, the cut marked."""
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


class HealthCheckOutcome(BaseModel):
    """What one health check saw. A failing check is an outcome, not an exception."""

    passed: bool
    detail: str
    duration_ms: int
