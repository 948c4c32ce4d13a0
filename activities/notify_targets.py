"""Where notifications go: ``RECOVERY_NOTIFY_URLS`` and the services file's ``[notify]`` table.

Targets are named by labels that say where they are configured and hold no secret
(``RECOVERY_NOTIFY_URLS#2``, ``notify.oncall``): a label is what the notification's
workflow records in its history. The secret itself (a webhook URL, a PagerDuty routing
key) is read by the delivery activity when it posts (``NotifyTarget.secret``), from the
variable or the file the table names, so it never enters history, and a rotated file
takes effect without a restart.

The ``[notify]`` table, one sub-table per target::

    [notify.chat]
    type = "slack"                     # a Slack-compatible incoming webhook
    url_env = "RECOVERY_SECRET_SLACK_WEBHOOK"

    [notify.oncall]
    type = "pagerduty"                 # PagerDuty Events v2
    routing_key_file = "/run/secrets/pagerduty"
    events = ["failed"]                # optional: only these events

A variable must be a ``RECOVERY_SECRET_*`` one: the worker masks those values in every
log line (``activities.redaction``), as it does for health checks' headers.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from activities.notification_event import NotificationEvent, NotificationEventName
from activities.settings import SECRET_ENV_PREFIX, RecoverySettings

TargetType = Literal["webhook", "slack", "pagerduty"]
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
# PagerDuty hears of what opens an incident and of what resolves it; nothing else.
PAGERDUTY_EVENTS: frozenset[str] = frozenset({"failed", "awaiting_operator", "recovered"})
NOTIFY_URLS_LABEL = "RECOVERY_NOTIFY_URLS"
NOTIFY_TABLE = "notify"
_TARGET_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class NotifySecretMissing(ValueError):
    """A target's variable or file is unset, unreadable or empty (the message names which)."""


class NotifyTarget(BaseModel):
    """One ``[notify.<name>]`` table: its type, where its secret is, which events it takes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: TargetType
    url_env: str | None = None
    url_file: Path | None = None
    routing_key_env: str | None = None
    routing_key_file: Path | None = None
    # Not a secret: where PagerDuty's Events API is (a test, a proxy or an EU account).
    events_url: str = Field(default=PAGERDUTY_EVENTS_URL, pattern=r"^https?://\S+$")
    events: frozenset[NotificationEventName] | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> NotifyTarget:
        key = "routing_key" if self.type == "pagerduty" else "url"
        other = "url" if key == "routing_key" else "routing_key"
        env, path = getattr(self, f"{key}_env"), getattr(self, f"{key}_file")
        if (env is None) == (path is None):
            raise ValueError(f"a {self.type} target takes exactly one of {key}_env and {key}_file")
        if getattr(self, f"{other}_env") is not None or getattr(self, f"{other}_file") is not None:
            raise ValueError(f"{other}_env and {other}_file are not for a {self.type} target")
        if env is not None and not (env.startswith(SECRET_ENV_PREFIX) and env != SECRET_ENV_PREFIX):
            raise ValueError(
                f"{key}_env: {env!r} is not a {SECRET_ENV_PREFIX}* variable (only those are "
                "masked in the worker's logs)"
            )
        if "events_url" in self.model_fields_set and self.type != "pagerduty":
            raise ValueError("events_url is for a pagerduty target only")
        return self

    def takes(self, event: NotificationEvent) -> bool:
        """Whether this target is told of ``event``."""
        if self.type == "pagerduty" and event.event not in PAGERDUTY_EVENTS:
            return False
        return self.events is None or event.event in self.events

    def secret(self) -> str:
        """Read the URL or routing key now, from its variable or file.

        Raises:
            NotifySecretMissing: naming the variable or file, never quoting a value.
        """
        env = self.url_env or self.routing_key_env
        if env is not None:
            value = os.environ.get(env, "").strip()
            if not value:
                raise NotifySecretMissing(f"{env} is not set on this worker")
            return value
        path = self.url_file or self.routing_key_file
        assert path is not None  # the validator admits exactly one source
        try:
            value = path.read_text().strip()
        except OSError as err:
            raise NotifySecretMissing(f"{path}: {err.strerror}") from None
        if not value:
            raise NotifySecretMissing(f"{path} is empty")
        return value


def parse_notify_table(raw: object) -> dict[str, NotifyTarget]:
    """Return the targets of a services file's ``[notify]`` table.

    Raises:
        ValueError: one line per problem, each naming its ``[notify.<name>]`` and field,
            as the services file's problems read (``[notify.chat] url_env: …``).
    """
    if not isinstance(raw, dict):
        raise ValueError("[notify] must be a table of targets ([notify.<name>])")
    targets: dict[str, NotifyTarget] = {}
    problems: list[str] = []
    for name, table in raw.items():
        label = f"[notify.{name}]"
        if _TARGET_NAME.fullmatch(name) is None:
            problems.append(f"{label} a target's name uses letters, digits, '_' and '-' only")
            continue
        if not isinstance(table, dict):
            problems.append(f"{label} expected a table (type = …, url_env = …)")
            continue
        try:
            targets[name] = NotifyTarget.model_validate(table)
        except ValidationError as err:
            for item in err.errors():
                where = ".".join(str(part) for part in item["loc"])
                if item["type"] == "extra_forbidden":
                    problems.append(f"{label} {_unknown(where)}")
                else:
                    field = f"{where}: " if where else ""
                    problems.append(f"{label} {field}{_reason(item['msg'])}")
    if problems:
        raise ValueError("\n".join(problems))
    return targets


def _unknown(field: str) -> str:
    """Say that ``field`` is not one, and where a secret written in the file belongs."""
    if field in ("url", "routing_key"):
        return (
            f"unknown field {field!r}: the file names where the secret is, never the secret "
            f"({field}_env or {field}_file)"
        )
    return f"unknown field {field!r}"


def _reason(message: str) -> str:
    return message.removeprefix("Value error, ")


def parse_notify_urls(text: str) -> tuple[str, ...]:
    """Return the webhook URLs of ``RECOVERY_NOTIFY_URLS`` (comma- or newline-separated).

    Raises:
        ValueError: naming the item by its position, never quoting it (a URL may be a secret).
    """
    urls = tuple(part.strip() for part in text.replace("\n", ",").split(",") if part.strip())
    for position, url in enumerate(urls, start=1):
        scheme, _, rest = url.partition("://")
        if scheme.lower() not in ("http", "https") or not rest or any(c.isspace() for c in url):
            raise ValueError(
                f"{NOTIFY_URLS_LABEL}: item {position} is not an http:// or https:// URL"
            )
    return urls


@dataclass(frozen=True)
class NotifyConfig:
    """Every target this worker delivers to: generic webhooks, then the named ones."""

    webhook_urls: tuple[str, ...] = ()
    named: dict[str, NotifyTarget] = field(default_factory=dict)

    def labels(self, event: NotificationEvent) -> list[str]:
        """Return the labels of the targets told of ``event``, in a fixed order."""
        generic = [f"{NOTIFY_URLS_LABEL}#{n}" for n in range(1, len(self.webhook_urls) + 1)]
        return generic + [
            f"{NOTIFY_TABLE}.{name}" for name, target in self.named.items() if target.takes(event)
        ]

    def described(self) -> list[str]:
        """Say each target by its label, type and events (for the worker's start; no secret)."""
        told = [f"{NOTIFY_URLS_LABEL}#{n} (webhook)" for n in range(1, len(self.webhook_urls) + 1)]
        for name, target in self.named.items():
            only = f"; {', '.join(sorted(target.events))} only" if target.events is not None else ""
            told.append(f"{NOTIFY_TABLE}.{name} ({target.type}{only})")
        return told

    def target(self, label: str) -> tuple[TargetType, NotifyTarget | None, str | None]:
        """Return a label's type with its table, or the generic URL it names.

        Raises:
            KeyError: no such target on this worker (its configuration changed).
        """
        kind, _, rest = label.partition(".")
        if kind == NOTIFY_TABLE:
            target = self.named[rest]
            return target.type, target, None
        base, _, number = label.partition("#")
        position = int(number) if base == NOTIFY_URLS_LABEL and number.isdigit() else 0
        if 1 <= position <= len(self.webhook_urls):
            return "webhook", None, self.webhook_urls[position - 1]
        raise KeyError(label)

    @classmethod
    def load(cls, services_file: Path | None) -> NotifyConfig:
        """Read ``RECOVERY_NOTIFY_URLS`` (or its ``_FILE``) and the services file's ``[notify]``.

        Raises:
            ValueError: a bad setting or table, saying which.
        """
        secret = RecoverySettings.secret("notify_urls")
        urls = parse_notify_urls(secret.decode()) if secret is not None else ()
        named: dict[str, NotifyTarget] = {}
        if services_file is not None:
            named = parse_notify_table(_notify_table(services_file))
        return cls(webhook_urls=urls, named=named)


def _notify_table(path: Path) -> Any:
    """Return the services file's ``[notify]`` table (empty when it has none)."""
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"{path}: {err}") from None
    return document.get(NOTIFY_TABLE, {})
