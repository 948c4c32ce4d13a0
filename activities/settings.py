"""Every ``RECOVERY_*`` setting in one place: ``RecoverySettings``.

The worker, ``recoveryctl`` and the facade read their settings through this model: each field
is one ``RECOVERY_<FIELD>`` variable, with its default, its description (the meaning column of
docs/configuration.md's table, generated from here) and its validation. A bad value raises
``ValueError`` naming the variable, as the worker reports before it connects (exit 2).

- ``RecoverySettings.load()`` reads and checks every setting at once;
- ``RecoverySettings.read(field)`` reads one (the ``*_from_env`` helpers of the modules that
  use a setting call it, so a bad value of one setting does not stop a reader of another);
- ``python -m activities.settings_doc`` (``make config-doc``) rewrites the table in
  docs/configuration.md from this model; ``--check`` only says whether it is current.

Here in ``activities``, the bottom layer, so that activities (the circuit store, the health
checks' allow-lists) and starter alike can import it. Not modelled: the ``RECOVERY_SECRET_*``
variables, whose names the health checks' specs choose at run time (``settings_doc``
documents them), and Temporal's own connection settings (``temporalio.envconfig``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from activities.build_id import MAX_BUILD_ID_LENGTH, parse_build_id
from activities.target_vetting import TargetAllowList
from activities.worker_tuning import WorkerTuning

ENV_PREFIX = "RECOVERY_"

STORE_URL_ENV = "RECOVERY_CIRCUIT_STORE"
SERVICES_FILE_ENV = "RECOVERY_SERVICES_FILE"
WATCH_INTERVAL_ENV = "RECOVERY_WATCH_INTERVAL"
ALLOWED_MODULES_ENV = "RECOVERY_HEALTH_CHECK_MODULES"
ALLOWED_TARGETS_ENV = "RECOVERY_HEALTH_CHECK_ALLOW"
WORKER_TUNING_ENV = "RECOVERY_WORKER_TUNING"
METRICS_BIND_ENV = "RECOVERY_METRICS_BIND"
TRACING_ENV = "RECOVERY_TRACING"
SECRET_ENV_PREFIX = "RECOVERY_SECRET_"

DEFAULT_STORE_URL = "sqlite:///.recovery/breakers.db"
DEFAULT_SERVICES_FILE = Path("recovery.toml")
# The circuit watch's bounds, as workflows.circuit_watch_models states them for its input
# (tests/activities/test_settings.py keeps the two equal; activities may not import workflows).
DEFAULT_WATCH_INTERVAL_SECONDS = 10.0
MIN_WATCH_INTERVAL_SECONDS = 1.0
MAX_WATCH_INTERVAL_SECONDS = 86_400.0
DEFAULT_WATCH_INTERVAL = timedelta(seconds=DEFAULT_WATCH_INTERVAL_SECONDS)
TRACING_ON = ("1", "true", "yes")

DEFAULT_RECEIVER_LABEL = "service"
DEFAULT_RECEIVER_MAX_BODY = 1024 * 1024
DEFAULT_RECEIVER_READ_TIMEOUT = 10.0
DEFAULT_LINK_LIFETIME = timedelta(hours=1)
MIN_LINK_LIFETIME = timedelta(seconds=60)
MAX_LINK_LIFETIME = timedelta(days=7)


def parse_watch_interval(text: str, source: str = WATCH_INTERVAL_ENV) -> timedelta:
    """Return the watch interval from seconds (``"10"``, ``"2.5"``).

    Raises:
        ValueError: naming ``source`` and the allowed range.
    """
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"{source}={text!r}: expected a number of seconds") from None
    low, high = MIN_WATCH_INTERVAL_SECONDS, MAX_WATCH_INTERVAL_SECONDS
    # Compared as seconds: False for NaN and the infinities too, which timedelta cannot hold.
    if not low <= seconds <= high:
        raise ValueError(
            f"{source}={text!r}: the watch interval must be between {low:g} and {high:g} seconds"
        )
    return timedelta(seconds=seconds)


def _documented(default: str) -> dict[str, Any]:
    """Return a field's ``json_schema_extra``: how the table shows its default."""
    return {"documented_default": default}


class RecoverySettings(BaseSettings):
    """Every ``RECOVERY_*`` variable the worker, ``recoveryctl`` and the facade read."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    circuit_store: str = Field(
        default=DEFAULT_STORE_URL,
        description="where breaker states live: `sqlite:///path` or `redis://host:port/db` "
        "(`rediss://` for TLS); the worker, `recoveryctl breakers` and `starter.breakers` read it",
        json_schema_extra=_documented(
            f"`{DEFAULT_STORE_URL}` (relative to the current folder)"
        ),
    )
    services_file: Path | None = Field(
        default=None,
        description="the services file the worker loads for the circuit watch "
        "(a file it names must exist)",
        json_schema_extra=_documented(f"`./{DEFAULT_SERVICES_FILE}` if it exists"),
    )
    watch_interval: timedelta = Field(
        default=DEFAULT_WATCH_INTERVAL,
        description="seconds between circuit watch runs "
        f"({MIN_WATCH_INTERVAL_SECONDS:g} … {MAX_WATCH_INTERVAL_SECONDS:,.0f})",
        json_schema_extra=_documented(f"`{DEFAULT_WATCH_INTERVAL_SECONDS:g}`"),
    )
    health_check_modules: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(),
        description="comma-separated modules whose functions `callable` health checks may run "
        "(read by the worker; the facade reads it too, to send a `health_check_fn` from a "
        "listed module as a durable `callable` check). With `make dev`: "
        "`RECOVERY_HEALTH_CHECK_MODULES=mychecks make dev`",
        json_schema_extra=_documented("empty"),
    )
    health_check_allow: Annotated[TargetAllowList, NoDecode] = Field(
        default=TargetAllowList(),
        description="link-local or metadata targets the worker's health checks may reach after "
        "all (comma-separated host names, addresses, CIDR networks; see "
        "[security.md](security.md))",
        json_schema_extra=_documented("empty"),
    )
    worker_tuning: Annotated[WorkerTuning, NoDecode] = Field(
        default=WorkerTuning(),
        description="the worker's cache, concurrency and pollers, e.g. "
        "`max_cached_workflows=2000,workflow_pollers=10` (see "
        "[performance.md](performance.md#worker-tuning) and below)",
        json_schema_extra=_documented("empty (SDK defaults)"),
    )
    metrics_bind: str | None = Field(
        default=None,
        description="`host:port` where the worker serves Prometheus metrics "
        "(`recovery-worker --metrics-bind` overrides it; see [metrics.md](metrics.md))",
        json_schema_extra=_documented("off"),
    )
    tracing: bool = Field(
        default=False,
        description="`1`, `true` or `yes`: the worker traces workflows and activities with "
        "OpenTelemetry (as `recovery-worker --tracing`; see [metrics.md](metrics.md))",
        json_schema_extra=_documented("off"),
    )
    build_id: str | None = Field(
        default=None,
        description="the worker's version in the Worker Deployment `recovery-orchestrator` "
        f"(letters, digits, `. _ + -`, at most {MAX_BUILD_ID_LENGTH}; see "
        "[versioning.md](versioning.md))",
        json_schema_extra=_documented("the installed package's version"),
    )

    # -- the receiver and its links (SPEC §10; see docs/receiver.md) --
    receiver_token: SecretStr | None = Field(
        default=None,
        description="the bearer token every request to `recoveryctl serve` must carry "
        "(`Authorization: Bearer <token>`); or `RECOVERY_RECEIVER_TOKEN_FILE`",
        json_schema_extra=_documented("none: `serve` refuses to start"),
    )
    receiver_token_file: Path | None = Field(
        default=None,
        description="a file holding the receiver's token (trailing newline ignored), instead "
        "of `RECOVERY_RECEIVER_TOKEN`",
        json_schema_extra=_documented("none"),
    )
    receiver_label: str = Field(
        default=DEFAULT_RECEIVER_LABEL,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}$",
        description="the Alertmanager label that names the service to recover",
        json_schema_extra=_documented(f"`{DEFAULT_RECEIVER_LABEL}`"),
    )
    receiver_max_body: int = Field(
        default=DEFAULT_RECEIVER_MAX_BODY,
        ge=1024,
        le=64 * 1024 * 1024,
        description="the largest request body the receiver reads, in bytes (larger: 413)",
        json_schema_extra=_documented(f"`{DEFAULT_RECEIVER_MAX_BODY}` (1 MiB)"),
    )
    receiver_read_timeout: float = Field(
        default=DEFAULT_RECEIVER_READ_TIMEOUT,
        gt=0,
        le=300,
        description="seconds the receiver waits for a request's headers and body before it "
        "drops the connection (slow clients)",
        json_schema_extra=_documented(f"`{DEFAULT_RECEIVER_READ_TIMEOUT:g}`"),
    )
    receiver_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s?#]+$",
        description="the receiver's address as operators reach it (`https://recovery.example`"
        "): approve and cancel links in notifications are built on it",
        json_schema_extra=_documented("none: notifications carry no links"),
    )
    link_secret: SecretStr | None = Field(
        default=None,
        description="the key (at least 16 bytes) approve and cancel links are signed with "
        "(HMAC-SHA256): the same on every worker and receiver; or `RECOVERY_LINK_SECRET_FILE`",
        json_schema_extra=_documented("none: notifications carry no links"),
    )
    link_secret_file: Path | None = Field(
        default=None,
        description="a file holding the link secret, instead of `RECOVERY_LINK_SECRET`",
        json_schema_extra=_documented("none"),
    )
    link_lifetime: timedelta = Field(
        default=DEFAULT_LINK_LIFETIME,
        description="seconds an approve or cancel link stays good (60 … 604,800)",
        json_schema_extra=_documented(f"`{DEFAULT_LINK_LIFETIME.total_seconds():g}` (1 h)"),
    )

    notify_urls: SecretStr | None = Field(
        default=None,
        description="comma-separated URLs the worker posts every notification to as JSON "
        "(generic webhooks; Slack and PagerDuty targets go in the services file's `[notify]`; "
        "see [notifications.md](notifications.md)); or `RECOVERY_NOTIFY_URLS_FILE`",
        json_schema_extra=_documented("none"),
    )
    notify_urls_file: Path | None = Field(
        default=None,
        description="a file holding the notification URLs (one a line, or comma-separated), "
        "instead of `RECOVERY_NOTIFY_URLS`",
        json_schema_extra=_documented("none"),
    )

    @field_validator("circuit_store", mode="before")
    @classmethod
    def _store_or_default(cls, value: Any) -> Any:
        return value or DEFAULT_STORE_URL  # empty counts as unset

    @field_validator("services_file", mode="before")
    @classmethod
    def _existing_file(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value:
                return None
            if not Path(value).is_file():  # a typo must not fall back to recovering everything
                raise ValueError(f"{value}: no such file (named by {SERVICES_FILE_ENV})")
        return value

    @field_validator("watch_interval", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_watch_interval(value) if value else DEFAULT_WATCH_INTERVAL
        return value

    @field_validator("health_check_modules", mode="before")
    @classmethod
    def _modules(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("health_check_allow", mode="before")
    @classmethod
    def _targets(cls, value: Any) -> Any:
        return TargetAllowList.parse(value) if isinstance(value, str) else value

    @field_validator("worker_tuning", mode="before")
    @classmethod
    def _tuning(cls, value: Any) -> Any:
        return WorkerTuning.parse(value) if isinstance(value, str) else value

    @field_validator("metrics_bind", mode="before")
    @classmethod
    def _bind(cls, value: Any) -> Any:
        return value or None

    @field_validator("tracing", mode="before")
    @classmethod
    def _on(cls, value: Any) -> Any:
        return value.strip().lower() in TRACING_ON if isinstance(value, str) else value

    @field_validator("build_id", mode="before")
    @classmethod
    def _build(cls, value: Any) -> Any:
        # Empty counts as not set, as compose files write an optional setting
        # (``${RECOVERY_BUILD_ID:-}``): the image's own package version, never a stale default.
        if isinstance(value, str):
            return parse_build_id(value) if value.strip() else None
        return value

    @field_validator("receiver_token", "link_secret", "receiver_url", "notify_urls", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return value or None

    @field_validator("receiver_token_file", "link_secret_file", "notify_urls_file", mode="before")
    @classmethod
    def _readable_file(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and value and not Path(value).is_file():
            raise ValueError(f"{value}: no such file (named by {cls.variable(str(info.field_name))})")
        return value or None

    @field_validator("link_lifetime", mode="before")
    @classmethod
    def _lifetime(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = timedelta(seconds=float(value))
            except (ValueError, OverflowError):
                raise ValueError(
                    f"RECOVERY_LINK_LIFETIME={value!r}: expected a number of seconds"
                ) from None
        if isinstance(value, timedelta) and not MIN_LINK_LIFETIME <= value <= MAX_LINK_LIFETIME:
            raise ValueError("RECOVERY_LINK_LIFETIME: between 60 and 604800 seconds")
        return value

    @classmethod
    def variable(cls, field: str) -> str:
        """Return the environment variable of a field (``circuit_store``: ``RECOVERY_CIRCUIT_STORE``)."""
        if field not in cls.model_fields:
            raise KeyError(field)
        return f"{ENV_PREFIX}{field.upper()}"

    @classmethod
    def secret(cls, field: str, environ: Mapping[str, str] | None = None) -> bytes | None:
        """Return a secret given as ``RECOVERY_<FIELD>`` or in the file ``RECOVERY_<FIELD>_FILE``.

        A file's trailing newline is not part of the secret. None when neither is set.

        Raises:
            ValueError: both are set, or the file cannot be read or is empty.
        """
        value = cls.read(field, environ)
        path = cls.read(f"{field}_file", environ)
        if value is not None and path is not None:
            raise ValueError(
                f"{cls.variable(field)} and {cls.variable(field + '_file')} are both set: keep one"
            )
        if isinstance(value, SecretStr):
            return value.get_secret_value().encode()
        if path is None:
            return None
        try:
            text = Path(path).read_bytes().rstrip(b"\r\n")
        except OSError as err:
            raise ValueError(f"{cls.variable(field + '_file')}: {path}: {err.strerror}") from None
        if not text:
            raise ValueError(f"{cls.variable(field + '_file')}: {path} is empty")
        return text

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> RecoverySettings:
        """Return every setting of ``environ`` (default: this process's environment).

        Raises:
            ValueError: the first bad setting's message, naming its variable.
        """
        try:
            if environ is None:
                return cls()
            given = {
                field: environ[cls.variable(field)]
                for field in cls.model_fields
                if cls.variable(field) in environ
            }
            return cls.model_validate(given)
        except ValidationError as err:
            raise _setting_error(err) from None

    @classmethod
    def read(cls, field: str, environ: Mapping[str, str] | None = None) -> Any:
        """Return one setting, checking that one only (default: this process's environment).

        Raises:
            ValueError: the setting is bad; the message names its variable.
        """
        variable = cls.variable(field)
        source = os.environ if environ is None else environ
        given = {field: source[variable]} if variable in source else {}
        try:
            return getattr(cls.model_validate(given), field)
        except ValidationError as err:
            raise _setting_error(err) from None


def _setting_error(err: ValidationError) -> ValueError:
    """Return the first error of ``err`` as the ``ValueError`` its validator raised."""
    first = err.errors()[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, ValueError):
        return cause
    field = str(first["loc"][0]) if first["loc"] else ""
    variable = f"{ENV_PREFIX}{field.upper()}" if field else "settings"
    return ValueError(f"{variable}: {first['msg']}")
