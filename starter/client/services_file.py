"""The services file, ``recovery.toml``: which services the circuit watch recovers, and how.

The worker reads it at start-up and hands it to the ``recovery-circuit-watch``
Schedule as a ``WatchInput``. Everything is checked here, before the worker
starts: a mistake found later would surface as a failed watch run in the Web UI,
far from the line that caused it. Every problem is reported at once, one per line,
each naming the file, the table and the field, so one edit fixes them all.
The format is documented in ``docs/services-file.md``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from activities.notify_targets import NOTIFY_TABLE, parse_notify_table
from activities.settings import DEFAULT_SERVICES_FILE, SERVICES_FILE_ENV, RecoverySettings
from starter.client.services_file_policy import default_policy, service_policy
from starter.client.services_file_problems import (
    Problems,
    ServicesFileError,
    did_you_mean,
    is_service_name,
    service_label,
    shown,
)
from starter.client.services_file_tables import TOP_LEVEL_KEYS, Table, read_table
from workflows.circuit_watch_models import MAX_CATALOG_BYTES, ServiceSettings, WatchInput
from workflows.dependencies import dependency_cycles
from workflows.errors import RecoveryValidationError
from workflows.models import RecoveryPolicy, validate_service_name

__all__ = [
    "DEFAULT_FILE",
    "ENV_VAR",
    "ServicesFileError",
    "load_services_file",
    "load_services_from_env",
    "services_file_from_env",
]

ENV_VAR = SERVICES_FILE_ENV
DEFAULT_FILE = DEFAULT_SERVICES_FILE


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
    problems = Problems(path)
    document = _read_toml(path)
    recover_unlisted = _check_top_level(document, problems)
    defaults = read_table(None, _top_table(document, "defaults", problems), problems)
    services = _top_table(document, "services", problems)
    tables = _read_services(services, problems)
    policy_of_defaults, default_messages = default_policy(defaults, problems)
    policies = {
        name: service_policy(table, defaults, default_messages, problems)
        for name, table in tables.items()
    }
    _check_dependencies(tables, set(services), problems)
    _check_notify(document, problems)
    problems.raise_if_any()
    watch = WatchInput(
        defaults=_settings(defaults, policy=policy_of_defaults),
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

def _check_top_level(document: dict[str, Any], problems: Problems) -> bool:
    """Check the top-level keys and return ``recover_unlisted``."""
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            hint = did_you_mean(key, TOP_LEVEL_KEYS)
            problems.add("", f"unknown top-level key {key!r}{f' ({hint})' if hint else ''}")
    recover_unlisted = document.get("recover_unlisted", True)
    if isinstance(recover_unlisted, bool):
        return recover_unlisted
    problems.add("", f"recover_unlisted: expected true or false (got {shown(recover_unlisted)})")
    return True

def _check_notify(document: dict[str, Any], problems: Problems) -> None:
    """Check ``[notify]``: the worker's notification activities read it (docs/notifications.md)."""
    if NOTIFY_TABLE not in document:
        return
    try:
        parse_notify_table(document[NOTIFY_TABLE])
    except ValueError as err:
        for line in str(err).splitlines():
            problems.add("", line)

def _top_table(document: dict[str, Any], key: str, problems: Problems) -> dict[str, Any]:
    """Return the top-level table ``key``: empty when absent, or after a problem if no table."""
    value = document.get(key, {})
    if isinstance(value, dict):
        return value
    problems.add(f"[{key}]", f"must be a table (got {shown(value)})")
    return {}

def _read_services(services: dict[str, Any], problems: Problems) -> dict[str, Table]:
    """Read every ``[services.<name>]`` table whose name is a valid service name."""
    tables: dict[str, Table] = {}
    for name, raw in services.items():
        try:
            validate_service_name(name)
        except RecoveryValidationError as err:
            problems.add(service_label(name), str(err))
            continue
        if not isinstance(raw, dict):
            problems.add(service_label(name), f"must be a table of settings (got {shown(raw)})")
            continue
        tables[name] = read_table(name, raw, problems)
    return tables

def _check_dependencies(tables: dict[str, Table], listed: set[str], problems: Problems) -> None:
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
            if not isinstance(dependency, str) or not is_service_name(dependency):
                continue  # the policy's validation reports the name
            if dependency == name:
                problems.add(table.label, f"depends_on: {name!r} cannot depend on itself")
            elif dependency not in listed:
                hint = did_you_mean(dependency, sorted(listed))
                problems.add(
                    table.label,
                    f"depends_on: unknown service {dependency!r} "
                    f"(not in [services]{f'; {hint}' if hint else ''})",
                )
            elif dependency in tables:
                graph[name].append(dependency)
    for cycle in dependency_cycles(graph):
        problems.add("", f"depends_on cycle: {' -> '.join(cycle)}")

def _settings(*tables: Table, policy: RecoveryPolicy | None) -> ServiceSettings:
    """Return settings with each field from the first of ``tables`` that sets it."""
    chosen: dict[str, Any] = {}
    for table in reversed(tables):
        if table.strategy is not None:
            chosen["strategy"] = table.strategy
        if table.priority is not None:
            chosen["priority"] = table.priority
    return ServiceSettings(**chosen, policy=policy)

def _check_size(watch: WatchInput, problems: Problems) -> None:
    """Refuse a catalog too large for the Schedule's input that carries it."""
    size = len(watch.model_dump_json().encode())
    if size > MAX_CATALOG_BYTES:
        problems.add(
            "",
            f"[services] too large: {size} bytes as JSON, over the {MAX_CATALOG_BYTES} "
            f"that the circuit watch carries (MAX_CATALOG_BYTES); "
            f"list fewer services or move shared settings to [defaults]",
        )
