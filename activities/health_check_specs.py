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


class _CheckBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_ms: int = Field(default=2000, gt=0, le=300_000)


class HttpHealthCheck(_CheckBase):
    """GET ``url``; healthy when the answer's status is one of ``expected_status``."""

    kind: Literal["http"] = "http"
    url: str
    expected_status: list[int] = Field(default_factory=lambda: [200], min_length=1)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return url


class TcpHealthCheck(_CheckBase):
    """Open a TCP connection to ``host:port``; healthy when it connects."""

    kind: Literal["tcp"] = "tcp"
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)


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


HealthCheck = Annotated[
    Union[HttpHealthCheck, TcpHealthCheck, CallableHealthCheck],
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
