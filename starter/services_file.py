"""The services file, ``recovery.toml``: which services the circuit watch recovers, and how.

The worker reads it at start-up and hands it to the ``recovery-circuit-watch``
Schedule as a ``WatchInput``. Everything is checked here, before the worker
starts: a mistake found later would surface as a failed watch run in the Web UI,
far from the line that caused it. Every problem is reported at once, one per line,
each naming the file, the table and the field, so one edit fixes them all.
The format is documented in ``docs/services-file.md``.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from activities.health_check_specs import hide_url_credentials
from activities.redaction import redact
from activities.settings import DEFAULT_SERVICES_FILE, SERVICES_FILE_ENV, RecoverySettings
from workflows.dependencies import dependency_cycles
from workflows.circuit_watch_models import MAX_CATALOG_BYTES, ServiceSettings, WatchInput
from workflows.errors import RecoveryValidationError
from workflows.models import (
    RecoveryPolicy,
    RecoveryStrategy,
    StrictPriority,
    validate_service_name,
)

ENV_VAR = SERVICES_FILE_ENV
DEFAULT_FILE = DEFAULT_SERVICES_FILE

# ``hosted`` checks are written by the facade for a Python callable; a file cannot name one.
FILE_CHECK_KINDS = ("http", "tcp", "callable")
# Every policy field but the client-side function and the hash, which no file should pin.
POLICY_FIELDS = tuple(
    name
    for name in RecoveryPolicy.model_fields
    if name not in {"health_check_fn", "constitutional_hash"}
)
TABLE_FIELDS = ("strategy", "priority", *POLICY_FIELDS)
TOP_LEVEL_KEYS = ("recover_unlisted", "defaults", "services")

_DEFAULTS = "[defaults]"
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_PRIORITY: TypeAdapter[int] = TypeAdapter(StrictPriority)


class ServicesFileError(ValueError):
    """The services file cannot be used: one line per problem, naming file, table and field."""


class _FilePolicy(RecoveryPolicy):
    """``RecoveryPolicy`` as a hand-written file must spell it.

    Strict types, because ``true`` or ``"5"`` is not a number of attempts; and
    pydantic's own ``__init__``, because ``StrictModel``'s folds every error into
    one message, losing the field, hence the table, each one belongs to. The
    validators, bounds and messages are the model's own.
    """

    model_config = ConfigDict(strict=True)
    __init__ = BaseModel.__init__


@dataclass
class _Table:
    """One table of the file (``[defaults]`` or a service) after its own checks."""

    label: str
    strategy: RecoveryStrategy | None = None
    priority: int | None = None
    # The policy fields it sets, as written (a health_check of a wrong kind left out).
    policy_fields: dict[str, Any] = field(default_factory=dict)


class _Problems:
    """The problems found so far, each a line that starts with the file's name."""

    def __init__(self, path: Path) -> None:
        self.file = str(path)
        self.lines: list[str] = []

    def add(self, where: str, what: str) -> None:
        """Record ``what`` went wrong in table ``where`` (empty: the file as a whole).

        Redacted (``activities.redaction``): the worker logs these lines when it refuses
        to start, and a secret written in the file must not be repeated there.
        """
        line = f"{self.file}: {where} {what}" if where else f"{self.file}: {what}"
        self.lines.append(redact(line))

    def raise_if_any(self) -> None:
        """Raise ``ServicesFileError`` with every problem found."""
        if self.lines:
            raise ServicesFileError("\n".join(self.lines))


def load_services_file(path: str | os.PathLike[str]) -> WatchInput:
    """Read and check a services file.

    Args:
        path: the TOML file.

    Returns:
        The watch's input: every listed service with ``[defaults]`` merged in,
        ``source`` set to ``path``.

    Raises:
        ServicesFileError: listing every problem, one per line.
    """
    path = Path(path)
    problems = _Problems(path)
    document = _read_toml(path)
    recover_unlisted = _check_top_level(document, problems)
    defaults = _read_table(None, _top_table(document, "defaults", problems), problems)
    services = _top_table(document, "services", problems)
    tables = _read_services(services, problems)
    default_policy, default_messages = _default_policy(defaults, problems)
    policies = {
        name: _service_policy(table, defaults, default_messages, problems)
        for name, table in tables.items()
    }
    _check_dependencies(tables, set(services), problems)
    problems.raise_if_any()
    watch = WatchInput(
        defaults=_settings(defaults, policy=default_policy),
        services={
            name: _settings(table, defaults, policy=policies[name])
            for name, table in tables.items()
        },
        recover_unlisted=recover_unlisted,
        source=str(path),
    )
    _check_size(watch, problems)
    problems.raise_if_any()
    return watch


def services_file_from_env() -> Path | None:
    """Return the services file to load: ``$RECOVERY_SERVICES_FILE``, else ``./recovery.toml``.

    Returns None when the variable is unset (or empty) and ``./recovery.toml`` does
    not exist: the worker then recovers every open breaker with the defaults.

    Raises:
        ServicesFileError: the variable names a file that does not exist; a typo
            there must not silently fall back to recovering everything.
    """
    try:
        path: Path | None = RecoverySettings.read("services_file")
    except ValueError as err:
        raise ServicesFileError(str(err)) from None
    if path is not None:
        return path
    return DEFAULT_FILE if DEFAULT_FILE.is_file() else None


def load_services_from_env() -> WatchInput:
    """Load the file ``services_file_from_env`` names, or return an empty ``WatchInput``."""
    path = services_file_from_env()
    return WatchInput() if path is None else load_services_file(path)


def _read_toml(path: Path) -> dict[str, Any]:
    """Parse the file; a file that is not TOML at all has only this one problem."""
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as err:
        raise ServicesFileError(f"{path}: cannot read: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ServicesFileError(f"{path}: not UTF-8 text (TOML files are UTF-8)") from None
    except tomllib.TOMLDecodeError as err:
        # tomllib's message ends with the place: "(at line 3, column 9)".
        raise ServicesFileError(f"{path}: invalid TOML: {err}") from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise ServicesFileError(
            f"{path}: invalid TOML: arrays or inline tables nested too deeply"
        ) from None


def _check_top_level(document: dict[str, Any], problems: _Problems) -> bool:
    """Check the top-level keys and return ``recover_unlisted``."""
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            hint = _did_you_mean(key, TOP_LEVEL_KEYS)
            problems.add("", f"unknown top-level key {key!r}{f' ({hint})' if hint else ''}")
    recover_unlisted = document.get("recover_unlisted", True)
    if isinstance(recover_unlisted, bool):
        return recover_unlisted
    problems.add("", f"recover_unlisted: expected true or false (got {_shown(recover_unlisted)})")
    return True


def _top_table(document: dict[str, Any], key: str, problems: _Problems) -> dict[str, Any]:
    """Return the top-level table ``key``: empty when absent, or after a problem if no table."""
    value = document.get(key, {})
    if isinstance(value, dict):
        return value
    problems.add(f"[{key}]", f"must be a table (got {_shown(value)})")
    return {}


def _read_services(services: dict[str, Any], problems: _Problems) -> dict[str, _Table]:
    """Read every ``[services.<name>]`` table whose name is a valid service name."""
    tables: dict[str, _Table] = {}
    for name, raw in services.items():
        try:
            validate_service_name(name)
        except RecoveryValidationError as err:
            problems.add(_service_label(name), str(err))
            continue
        if not isinstance(raw, dict):
            problems.add(_service_label(name), f"must be a table of settings (got {_shown(raw)})")
            continue
        tables[name] = _read_table(name, raw, problems)
    return tables


def _read_table(service: str | None, raw: dict[str, Any], problems: _Problems) -> _Table:
    """Check one table's keys, ``strategy``, ``priority`` and ``health_check``'s kind.

    Args:
        service: the service the table is about; None for ``[defaults]``.
        raw: the table as parsed.
        problems: where to record what is wrong.

    The other policy fields are gathered as written: ``_validate_policy`` checks
    them together, once the defaults are merged in.
    """
    table = _Table(_DEFAULTS if service is None else _service_label(service))
    for key, value in raw.items():
        if key == "strategy":
            table.strategy = _strategy(table.label, value, problems)
        elif key == "priority":
            table.priority = _priority(table.label, value, problems)
        elif key == "depends_on" and service is None:
            problems.add(
                table.label,
                "depends_on: not allowed in [defaults]: every service takes the defaults, so "
                "each service it names would depend on itself; set depends_on per service",
            )
        elif key == "health_check":
            if _check_kind(table.label, value, problems):
                table.policy_fields[key] = value
        elif key in POLICY_FIELDS:
            table.policy_fields[key] = value
        else:
            problems.add(table.label, _unknown_field(service, key, value))
    return table


def _unknown_field(service: str | None, key: str, value: object) -> str:
    """Describe an unknown key, with the likeliest intended one."""
    if key in TOP_LEVEL_KEYS:
        # TOML puts every key after a [table] line into that table.
        return f"unknown field {key!r}: a top-level key goes above the file's first [table]"
    if service is not None and isinstance(value, dict):
        # [services.api.v2] is a table "v2" inside service "api".
        quoted = json.dumps(f"{service}.{key}", ensure_ascii=False)
        return f"unknown field {key!r}: a service name with a dot is quoted: [services.{quoted}]"
    hint = _did_you_mean(key, TABLE_FIELDS)
    return f"unknown field {key!r}{f' ({hint})' if hint else ''}"


def _strategy(label: str, value: object, problems: _Problems) -> RecoveryStrategy | None:
    """Return the strategy ``value`` names, or None after recording why it names none."""
    known = [strategy.value for strategy in RecoveryStrategy]
    if isinstance(value, str) and value in known:
        return RecoveryStrategy(value)
    problems.add(
        label, f"strategy: unknown strategy {value!r} (expected one of {', '.join(known)})"
    )
    return None


def _priority(label: str, value: object, problems: _Problems) -> int | None:
    """Return the priority, or None after recording why ``value`` is not one."""
    try:
        return _PRIORITY.validate_python(value)
    except ValidationError as err:
        for item in err.errors():
            problems.add(label, _describe(item, ("priority",)))
        return None


def _check_kind(label: str, value: object, problems: _Problems) -> bool:
    """Return True when ``health_check`` is a table of a kind a file may use.

    Checked before pydantic, whose message for a bad kind would offer ``hosted``.
    """
    expected = f"expected one of {', '.join(FILE_CHECK_KINDS)}"
    if not isinstance(value, dict):
        problems.add(
            label,
            f'health_check: expected a table such as {{ kind = "http", url = "..." }} '
            f"(got {_shown(value)})",
        )
        return False
    if "kind" not in value:
        problems.add(label, f"health_check: missing kind ({expected})")
        return False
    if value["kind"] not in FILE_CHECK_KINDS:
        problems.add(label, f"health_check: unknown kind {value['kind']!r} ({expected})")
        return False
    return True


def _default_policy(
    defaults: _Table, problems: _Problems
) -> tuple[RecoveryPolicy | None, set[str]]:
    """Check ``[defaults]``' policy on its own, as unlisted services use exactly it.

    Returns:
        The policy (None when ``[defaults]`` sets no policy field), and the
        messages of its problems across fields, so that services inheriting
        such a problem do not repeat it.
    """
    if not defaults.policy_fields:
        return None, set()
    policy, errors = _validate_policy(defaults.policy_fields)
    for _, message in errors:
        problems.add(defaults.label, message)
    return policy, {message for field_name, message in errors if field_name is None}


def _service_policy(
    table: _Table, defaults: _Table, default_messages: set[str], problems: _Problems
) -> RecoveryPolicy | None:
    """Return the service's policy: ``[defaults]``, overridden field by field by its own.

    None when neither sets a policy field, so the coordinator's own precedence
    applies. A problem with a value the service inherits belongs to ``[defaults]``
    and was reported there.
    """
    merged = {**defaults.policy_fields, **table.policy_fields}
    if not merged:
        return None
    policy, errors = _validate_policy(merged)
    for field_name, message in errors:
        if field_name is None:
            inherited = message in default_messages
        else:
            inherited = field_name not in table.policy_fields
        if not inherited:
            problems.add(table.label, message)
    return policy


def _validate_policy(
    fields: dict[str, Any],
) -> tuple[RecoveryPolicy | None, list[tuple[str | None, str]]]:
    """Validate policy fields as the model does, strictly typed.

    Returns:
        The policy, or None and its problems: the field each is about (None for
        a rule across fields, such as ``max_delay_ms >= initial_delay_ms``) and
        its message.
    """
    try:
        # Through JSON, where strict mode still reads "none" as Jitter.NONE. A TOML
        # date becomes a string there, refused with the field's own type error.
        _FilePolicy.model_validate_json(json.dumps(fields, default=str))
    except ValidationError as err:
        return None, [
            (str(item["loc"][0]) if item["loc"] else None, _describe(item))
            for item in err.errors()
        ]
    return RecoveryPolicy(**fields), []


def _shown(value: object, limit: int = 80) -> str:
    """Return a value for an error line: its repr, cut short (a line, not the whole value)."""
    text = redact(hide_url_credentials(repr(value)))
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text)} characters)"


def _describe(item: ErrorDetails, prefix: tuple[str, ...] = ()) -> str:
    """Return ``field: what was wrong`` for one pydantic error, in the model's own words."""
    location = [*prefix, *(str(part) for part in item["loc"])]
    if len(location) >= 2 and location[0] == "health_check":
        del location[1]  # the union's tag: the kind, which the file already shows
    error = (item.get("ctx") or {}).get("error")
    what = str(error) if isinstance(error, ValueError) else item["msg"]
    if item["type"] == "extra_forbidden":
        what = f"unknown field {location.pop()!r}"
    elif isinstance(item["input"], (str, int, float)) and "headers_from_env" not in location:
        # A header's value is never quoted: it may be the secret, written where its
        # variable's name belongs.
        what += f" (got {_shown(item['input'])})"
    where = ".".join(location)
    if not where or what.startswith((f"{where}:", f"{where} ")):
        return what  # the model's message names the field already
    return f"{where}: {what}"


def _check_dependencies(tables: dict[str, _Table], listed: set[str], problems: _Problems) -> None:
    """Check that every ``depends_on`` names another listed service, and that none loops.

    ``listed`` holds every name under ``[services]``, those whose tables have
    problems of their own too: they are reported as such, not as unknown.
    """
    graph: dict[str, list[str]] = {}
    for name, table in tables.items():
        graph[name] = []
        dependencies = table.policy_fields.get("depends_on", [])
        if not isinstance(dependencies, list):
            continue  # the policy's validation reports the type
        for dependency in dependencies:
            if not isinstance(dependency, str) or not _is_service_name(dependency):
                continue  # the policy's validation reports the name
            if dependency == name:
                problems.add(table.label, f"depends_on: {name!r} cannot depend on itself")
            elif dependency not in listed:
                hint = _did_you_mean(dependency, sorted(listed))
                problems.add(
                    table.label,
                    f"depends_on: unknown service {dependency!r} "
                    f"(not in [services]{f'; {hint}' if hint else ''})",
                )
            elif dependency in tables:
                graph[name].append(dependency)
    for cycle in dependency_cycles(graph):
        problems.add("", f"depends_on cycle: {' -> '.join(cycle)}")


def _settings(*tables: _Table, policy: RecoveryPolicy | None) -> ServiceSettings:
    """Return settings with each field from the first of ``tables`` that sets it."""
    chosen: dict[str, Any] = {}
    for table in reversed(tables):
        if table.strategy is not None:
            chosen["strategy"] = table.strategy
        if table.priority is not None:
            chosen["priority"] = table.priority
    return ServiceSettings(**chosen, policy=policy)


def _check_size(watch: WatchInput, problems: _Problems) -> None:
    """Refuse a catalog too large for the Schedule's input that carries it."""
    size = len(watch.model_dump_json().encode())
    if size > MAX_CATALOG_BYTES:
        problems.add(
            "",
            f"[services] too large: {size} bytes as JSON, over the {MAX_CATALOG_BYTES} "
            f"that the circuit watch carries (MAX_CATALOG_BYTES); "
            f"list fewer services or move shared settings to [defaults]",
        )


def _service_label(name: str) -> str:
    """Return the service's table as the file writes it: ``[services.db]``, ``[services."a.b"]``."""
    if _BARE_KEY.match(name):
        return f"[services.{name}]"
    return f"[services.{json.dumps(name, ensure_ascii=False)}]"


def _is_service_name(name: str) -> bool:
    """Return True for a valid service name."""
    try:
        validate_service_name(name)
    except RecoveryValidationError:
        return False
    return True


def _did_you_mean(word: str, known: Iterable[str]) -> str:
    """Return "did you mean 'x'?" for the known word closest to ``word``, or ''."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return f"did you mean {close[0]!r}?" if close else ""
