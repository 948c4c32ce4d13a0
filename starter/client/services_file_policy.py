"""The services file's policies: ``[defaults]`` merged field by field into each service's.

Checked by the model's own validators, strictly typed, and each problem told once: in
the table that wrote the value, not in every service that inherits it.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from starter.client.services_file_problems import Problems, describe
from starter.client.services_file_tables import Table
from workflows.models import RecoveryPolicy

class FilePolicy(RecoveryPolicy):
    """``RecoveryPolicy`` as a hand-written file must spell it.

    Strict types, because ``true`` or ``"5"`` is not a number of attempts; and
    pydantic's own ``__init__``, because ``StrictModel``'s folds every error into
    one message, losing the field, hence the table, each one belongs to. The
    validators, bounds and messages are the model's own.
    """

    model_config = ConfigDict(strict=True)
    __init__ = BaseModel.__init__

def default_policy(
    defaults: Table, problems: Problems
) -> tuple[RecoveryPolicy | None, set[str]]:
    """Check ``[defaults]``' policy on its own, as unlisted services use exactly it.

    Returns:
        The policy (None when ``[defaults]`` sets no policy field), and the
        messages of its problems across fields, so that services inheriting
        such a problem do not repeat it.
    """
    if not defaults.policy_fields:
        return None, set()
    policy, errors = validate_policy(defaults.policy_fields)
    for _, message in errors:
        problems.add(defaults.label, message)
    return policy, {message for field_name, message in errors if field_name is None}

def service_policy(
    table: Table, defaults: Table, default_messages: set[str], problems: Problems
) -> RecoveryPolicy | None:
    """Return the service's policy: ``[defaults]``, overridden field by field by its own.

    None when neither sets a policy field, so the coordinator's own precedence
    applies. A problem with a value the service inherits belongs to ``[defaults]``
    and was reported there.
    """
    merged = {**defaults.policy_fields, **table.policy_fields}
    if not merged:
        return None
    policy, errors = validate_policy(merged)
    for field_name, message in errors:
        if field_name is None:
            inherited = message in default_messages
        else:
            inherited = field_name not in table.policy_fields
        if not inherited:
            problems.add(table.label, message)
    return policy

def validate_policy(
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
        FilePolicy.model_validate_json(json.dumps(fields, default=str))
    except ValidationError as err:
        return None, [
            (str(item["loc"][0]) if item["loc"] else None, describe(item))
            for item in err.errors()
        ]
    return RecoveryPolicy(**fields), []
