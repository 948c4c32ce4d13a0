"""The two bodies the receiver takes, checked before anything is scheduled.

``POST /alertmanager`` takes Alertmanager's webhook body, version 4; ``POST /recoveries``
takes ``{"services": [name, …]}``. Anything else is refused with a ``RequestRefused`` that
names the field and says what was wrong, so the sender can fix its request: a 400 for
text that is not JSON, a 422 for JSON of the wrong shape.

Alertmanager adds fields over time (``groupKey``, ``truncatedAlerts``…): those the
receiver does not read are ignored. The plain form is ours: an unknown field there is
refused, as a typo (``service`` for ``services``) must not schedule nothing silently.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

# What one request may ask for: the coordinator's batch (``schedule_recoveries``) takes 1000.
MAX_ITEMS = 1000
# How much of a refused value an error quotes back.
MAX_QUOTED = 60


class RequestRefused(Exception):
    """A request the receiver refuses (its token, its body): HTTP status, field, what was wrong."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


class AlertmanagerAlert(BaseModel):
    """One alert of a webhook body: only what the receiver reads is checked."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    startsAt: datetime | None = None
    fingerprint: StrictStr | None = Field(default=None, max_length=200)


class AlertmanagerWebhook(BaseModel):
    """Alertmanager's webhook body, version 4 (``webhook_configs``)."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    alerts: list[AlertmanagerAlert] = Field(max_length=MAX_ITEMS)


class RecoveriesRequest(BaseModel):
    """The plain form: the services to recover, as automation asks for them."""

    model_config = ConfigDict(extra="forbid")

    services: list[StrictStr] = Field(min_length=1, max_length=MAX_ITEMS)


Body = TypeVar("Body", AlertmanagerWebhook, RecoveriesRequest)


def parse_alertmanager(raw: bytes) -> AlertmanagerWebhook:
    """Return the webhook body in ``raw``.

    Raises:
        RequestRefused: not JSON (400), or not a version 4 webhook body (422).
    """
    return _validated(AlertmanagerWebhook, raw)


def parse_recoveries(raw: bytes) -> RecoveriesRequest:
    """Return the plain request in ``raw``.

    Raises:
        RequestRefused: not JSON (400), or not ``{"services": [name, …]}`` (422).
    """
    return _validated(RecoveriesRequest, raw)


def _validated(model: type[Body], raw: bytes) -> Body:
    document = _json(raw)
    if not isinstance(document, dict):
        raise RequestRefused(422, f"the body must be a JSON object, not {_json_type(document)}")
    try:
        return model.model_validate(document)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        field = field_path(first["loc"])
        given = first.get("input")
        quoted = "" if first["type"] == "missing" else f" (got {_quoted(given)})"
        raise RequestRefused(422, f"{field or 'body'}: {first['msg']}{quoted}", field or None) from None


def _json(raw: bytes) -> Any:
    """Parse ``raw`` as JSON, refusing what is not UTF-8 JSON (or nests beyond reason)."""
    if not raw.strip():
        raise RequestRefused(400, "the body is empty: send a JSON object")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise RequestRefused(400, "the body is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise RequestRefused(
            400, f"the body is not JSON: {err.msg} at line {err.lineno}, column {err.colno}"
        ) from None
    except RecursionError:
        raise RequestRefused(400, "the body is not JSON the receiver reads: nested too deeply") from None


def field_path(location: tuple[int | str, ...]) -> str:
    """Return a pydantic error location as the field's path: ``alerts[2].labels.service``."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _quoted(value: object) -> str:
    if isinstance(value, (dict, list)):
        return _json_type(value)
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 1] + "…"


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")
