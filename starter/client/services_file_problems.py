"""How the services file's problems are told: one line each, naming file, table and field.

Every problem is gathered before any is raised, so one edit fixes them all; each line is
redacted, because the worker logs them when it refuses to start.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from pathlib import Path

from pydantic_core import ErrorDetails

from activities.health_check_specs import hide_url_credentials
from activities.redaction import redact
from workflows.errors import RecoveryValidationError
from workflows.models import validate_service_name

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")

class ServicesFileError(ValueError):
    """The services file cannot be used: one line per problem, naming file, table and field."""

class Problems:
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

def shown(value: object, limit: int = 80) -> str:
    """Return a value for an error line: its repr, cut short (a line, not the whole value)."""
    text = redact(hide_url_credentials(repr(value)))
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text)} characters)"

def describe(item: ErrorDetails, prefix: tuple[str, ...] = ()) -> str:
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
        what += f" (got {shown(item['input'])})"
    where = ".".join(location)
    if not where or what.startswith((f"{where}:", f"{where} ")):
        return what  # the model's message names the field already
    return f"{where}: {what}"

def service_label(name: str) -> str:
    """Return the service's table as the file writes it: ``[services.db]``, ``[services."a.b"]``."""
    if _BARE_KEY.match(name):
        return f"[services.{name}]"
    return f"[services.{json.dumps(name, ensure_ascii=False)}]"

def is_service_name(name: str) -> bool:
    """Return True for a valid service name."""
    try:
        validate_service_name(name)
    except RecoveryValidationError:
        return False
    return True

def did_you_mean(word: str, known: Iterable[str]) -> str:
    """Return "did you mean 'x'?" for the known word closest to ``word``, or ''."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return f"did you mean {close[0]!r}?" if close else ""
