"""Health checks as data.

A function cannot travel into a workflow, so a health check is described by a small
pydantic model (a union on ``kind``) and run by the ``run_health_check`` activity.
These models live here, in the ground floor, because they are an activity's input;
``workflows.models`` imports them for ``RecoveryPolicy.health_check``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

_CALLABLE_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")

# The activity a ``hosted`` check runs, served by the process that scheduled the recovery.
HOSTED_CHECK_ACTIVITY = "run_hosted_health_check"


class _CheckBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_ms: int = Field(default=2000, gt=0, le=300_000)


class HttpHealthCheck(_CheckBase):
    """GET ``url``; healthy when the answer's status is one of ``expected_status``."""

    kind: Literal["http"] = "http"
    url: str = Field(max_length=2048)
    expected_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=lambda: [200], min_length=1, max_length=50
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return url

    @property
    def target(self) -> str:
        """Name the check by what it probes (activity summaries, the Web UI's details)."""
        return f"http GET {self.url}"


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


class HealthCheckOutcome(BaseModel):
    """What one health check saw. A failing check is an outcome, not an exception."""

    passed: bool
    detail: str
    duration_ms: int
