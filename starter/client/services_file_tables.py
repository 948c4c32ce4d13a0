"""One table of the services file (``[defaults]`` or ``[services.<name>]``): its own checks.

Each key is checked on its own here (``strategy``, ``priority``, the kind of
``health_check``, unknown keys with the likeliest intended one); the policy fields are
gathered as written and checked together once ``[defaults]`` is merged in
(``starter.client.services_file_policy``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from starter.client.services_file_problems import (
    Problems,
    describe,
    did_you_mean,
    service_label,
    shown,
)
from workflows.models import RecoveryPolicy, RecoveryStrategy, StrictPriority

# ``hosted`` checks are written by the facade for a Python callable; a file cannot name one.
FILE_CHECK_KINDS = ("http", "tcp", "callable")
# Every policy field but the client-side function and the hash, which no file should pin.
POLICY_FIELDS = tuple(
    name
    for name in RecoveryPolicy.model_fields
    if name not in {"health_check_fn", "constitutional_hash"}
)
TABLE_FIELDS = ("strategy", "priority", *POLICY_FIELDS)
TOP_LEVEL_KEYS = ("recover_unlisted", "defaults", "services", "notify")

DEFAULTS = "[defaults]"
_PRIORITY: TypeAdapter[int] = TypeAdapter(StrictPriority)

@dataclass
class Table:
    """One table of the file (``[defaults]`` or a service) after its own checks."""

    label: str
    strategy: RecoveryStrategy | None = None
    priority: int | None = None
    # The policy fields it sets, as written (a health_check of a wrong kind left out).
    policy_fields: dict[str, Any] = field(default_factory=dict)

def read_table(service: str | None, raw: dict[str, Any], problems: Problems) -> Table:
    """Check one table's keys, ``strategy``, ``priority`` and ``health_check``'s kind.

    Args:
        service: the service the table is about; None for ``[defaults]``.
        raw: the table as parsed.
        problems: where to record what is wrong.

    The other policy fields are gathered as written: ``services_file_policy`` checks
    them together, once the defaults are merged in.
    """
    table = Table(DEFAULTS if service is None else service_label(service))
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
    hint = did_you_mean(key, TABLE_FIELDS)
    return f"unknown field {key!r}{f' ({hint})' if hint else ''}"

def _strategy(label: str, value: object, problems: Problems) -> RecoveryStrategy | None:
    """Return the strategy ``value`` names, or None after recording why it names none."""
    known = [strategy.value for strategy in RecoveryStrategy]
    if isinstance(value, str) and value in known:
        return RecoveryStrategy(value)
    problems.add(
        label, f"strategy: unknown strategy {value!r} (expected one of {', '.join(known)})"
    )
    return None

def _priority(label: str, value: object, problems: Problems) -> int | None:
    """Return the priority, or None after recording why ``value`` is not one."""
    try:
        return _PRIORITY.validate_python(value)
    except ValidationError as err:
        for item in err.errors():
            problems.add(label, describe(item, ("priority",)))
        return None

def _check_kind(label: str, value: object, problems: Problems) -> bool:
    """Return True when ``health_check`` is a table of a kind a file may use.

    Checked before pydantic, whose message for a bad kind would offer ``hosted``.
    """
    expected = f"expected one of {', '.join(FILE_CHECK_KINDS)}"
    if not isinstance(value, dict):
        problems.add(
            label,
            f'health_check: expected a table such as {{ kind = "http", url = "..." }} '
            f"(got {shown(value)})",
        )
        return False
    if "kind" not in value:
        problems.add(label, f"health_check: missing kind ({expected})")
        return False
    if value["kind"] not in FILE_CHECK_KINDS:
        problems.add(label, f"health_check: unknown kind {value['kind']!r} ({expected})")
        return False
    return True
