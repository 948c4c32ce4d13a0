"""docs/configuration.md's table of ``RECOVERY_*`` variables, generated from ``RecoverySettings``.

``python -m activities.settings_doc`` (``make config-doc``) rewrites the table;
``--check`` only says whether it is current (tests/activities/test_settings.py fails
when the two disagree). Apart from the model so that the worker never loads it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from activities.settings import SECRET_ENV_PREFIX, RecoverySettings

ROOT = Path(__file__).resolve().parent.parent
CONFIGURATION_DOC = ROOT / "docs" / "configuration.md"
TABLE_MARKER = (
    "<!-- generated from activities/settings.py by `make config-doc`: "
    "edit the model, not this table -->"
)
TABLE_HEADER = ("| variable | default | meaning |", "| --- | --- | --- |")
# Rows of the table that are not fields of the model: (variable, default, meaning).
OTHER_VARIABLES_BEFORE = (
    (
        "`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, TLS, profiles",
        "`localhost:7233`, `default`",
        "Temporal's own [envconfig](https://docs.temporal.io/develop/environment-configuration) "
        "settings, read by the worker, the facade and `recoveryctl`",
    ),
)
OTHER_VARIABLES_AFTER = (
    (
        f"`{SECRET_ENV_PREFIX}*`",
        "none",
        "secrets a health check sends as headers (`headers_from_env` names the variable; only "
        "this prefix can be read): set on every worker, see [security.md](security.md). Read "
        "by name when a check runs (`activities.http_checks`) and masked in every text the "
        "product writes (`activities.redaction`)",
    ),
)



def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def configuration_table() -> str:
    """Return docs/configuration.md's table of environment variables, from the model."""
    rows = [*TABLE_HEADER]
    for variable, default, meaning in OTHER_VARIABLES_BEFORE:
        rows.append(f"| {variable} | {default} | {meaning} |")
    for field, info in RecoverySettings.model_fields.items():
        extra = info.json_schema_extra
        assert isinstance(extra, dict), f"{field}: no documented default"
        default = str(extra["documented_default"])
        description = info.description or ""
        assert description, f"{field}: no description"
        rows.append(
            f"| `{RecoverySettings.variable(field)}` | {_cell(default)} | {_cell(description)} |"
        )
    for variable, default, meaning in OTHER_VARIABLES_AFTER:
        rows.append(f"| {variable} | {default} | {meaning} |")
    return "\n".join(rows) + "\n"


def documented_table(text: str) -> str:
    """Return the table that follows ``TABLE_MARKER`` in a document's text.

    Raises:
        ValueError: the document has no marker.
    """
    lines = text.splitlines(keepends=True)
    try:
        start = next(n for n, line in enumerate(lines) if line.strip() == TABLE_MARKER) + 1
    except StopIteration:
        raise ValueError(f"no line {TABLE_MARKER!r} before the table") from None
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "".join(lines[start:end])


def with_table(text: str) -> str:
    """Return the document's text with its table replaced by ``configuration_table()``."""
    table = documented_table(text)
    marker = text.index(TABLE_MARKER) + len(TABLE_MARKER) + 1
    return text[:marker] + configuration_table() + text[marker + len(table) :]


def main(argv: list[str] | None = None) -> int:
    """Rewrite docs/configuration.md's table (``--check``: exit 1 if it is stale)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--check", action="store_true", help="only say whether it is current")
    parser.add_argument("--file", type=Path, default=CONFIGURATION_DOC)
    args = parser.parse_args(argv)
    text = args.file.read_text(encoding="utf-8")
    wanted = with_table(text)
    if wanted == text:
        print(f"{args.file}: the configuration table is current")
        return 0
    if args.check:
        print(f"{args.file}: the configuration table is stale: run `make config-doc`")
        return 1
    args.file.write_text(wanted, encoding="utf-8")
    print(f"{args.file}: configuration table rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
