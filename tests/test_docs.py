"""The documents: a README that is a guide, a reference in docs/ that stays complete and linked.

The README is what a newcomer reads first, so it stays short and starts with the two set-up
commands; the reference lives in docs/ and CHANGELOG.md, and these tests keep it in step with
the code (every setting the product reads, every refusal code it sends) and keep every link
between the documents pointing at a file and a heading that exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

README = REPO / "README.md"
CHANGELOG = REPO / "CHANGELOG.md"
DOCS = REPO / "docs"
PRODUCT = [REPO / "worker.py", *[
    path for package in ("workflows", "activities", "starter") for path in (REPO / package).rglob("*.py")
]]
README_MAX_LINES = 250
FIRST_SCREEN = 25  # lines a terminal or a repository page shows before scrolling


def documents() -> list[Path]:
    """Return every Markdown document of the project (README, changelog, docs/)."""
    return [README, CHANGELOG, *sorted(DOCS.glob("*.md"))]


def slug(heading: str) -> str:
    """Return GitHub's anchor for a heading's text."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Return the anchors of every heading in a Markdown file (code blocks left out)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"#{1,6} (.+)", line)):
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def section(path: Path, heading: str) -> str:
    """Return the text under one ``## heading`` of a Markdown file, up to the next one."""
    text = path.read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_readme_is_a_guide_of_at_most_about_250_lines() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move reference to docs/"
    assert "## Changelog" not in README.read_text(), "the changelog lives in CHANGELOG.md"


def test_readme_first_screen_gives_exactly_the_two_set_up_commands_and_they_exist() -> None:
    first_screen = "\n".join(README.read_text().splitlines()[:FIRST_SCREEN])
    blocks = re.findall(r"```bash\n(.*?)```", first_screen, re.S)
    assert blocks, "no command block on the README's first screen"
    commands = [line.split("#")[0].strip() for line in blocks[0].splitlines() if line.strip()]
    assert commands == ["make dev", "make test"], commands
    makefile = (REPO / "Makefile").read_text()
    for target in ("dev", "test"):
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile has no target {target}"


def test_readme_walks_through_the_demo_a_first_recovery_and_approving_then_points_onward() -> None:
    text = README.read_text()
    headings = re.findall(r"^## (.+)$", text, re.M)
    for wanted in ("The demo", "A first recovery by hand", "Approving", "Where to go next"):
        assert wanted in headings, f"README.md has no section {wanted!r}: {headings}"
    assert headings.index("The demo") < headings.index("A first recovery by hand") < headings.index(
        "Approving"
    ) < headings.index("Where to go next")
    linked = set(re.findall(r"\]\(((?:docs/)?[\w.-]+\.md)", section(README, "Where to go next")))
    wanted_docs = {f"docs/{path.name}" for path in DOCS.glob("*.md")} | {"CHANGELOG.md"}
    assert wanted_docs <= linked, f"not linked from 'Where to go next': {sorted(wanted_docs - linked)}"


@pytest.mark.parametrize("document", documents(), ids=lambda path: path.relative_to(REPO).as_posix())
def test_every_relative_link_reaches_a_file_and_a_heading(document: Path) -> None:
    text = re.sub(r"```.*?```", "", document.read_text(), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not ours to check offline
        path_part, _, anchor = target.partition("#")
        linked = (document.parent / path_part).resolve() if path_part else document
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.relative_to(REPO)}")
    assert not broken, broken


def settings_the_product_reads() -> set[str]:
    """Return every ``RECOVERY_*`` variable name the product code reads (prefixes end with ``*``)."""
    names: set[str] = set()
    for path in PRODUCT:
        source = path.read_text()
        names.update(re.findall(r'\w*ENV\w*\s*=\s*"(RECOVERY_[A-Z_]+)"', source))
        names.update(re.findall(r'environ(?:\.get\(|\[)\s*"(RECOVERY_[A-Z_]+)"', source))
        names.update(re.findall(r'getenv\(\s*"(RECOVERY_[A-Z_]+)"', source))
    return {f"{name}*" if name.endswith("_") else name for name in names}


def test_configuration_doc_names_every_recovery_setting_the_product_reads() -> None:
    table = section(DOCS / "configuration.md", "Environment variables")
    read = settings_the_product_reads()
    known = {
        "RECOVERY_CIRCUIT_STORE", "RECOVERY_SERVICES_FILE", "RECOVERY_WATCH_INTERVAL",
        "RECOVERY_HEALTH_CHECK_MODULES", "RECOVERY_HEALTH_CHECK_ALLOW", "RECOVERY_SECRET_*",
        "RECOVERY_WORKER_TUNING", "RECOVERY_METRICS_BIND", "RECOVERY_TRACING", "RECOVERY_BUILD_ID",
    }
    missing = sorted(name for name in read | known if f"`{name}`" not in table)
    assert not missing, f"docs/configuration.md's table does not name {missing}"
    assert "`TEMPORAL_ADDRESS`" in table and "`TEMPORAL_NAMESPACE`" in table
    assert "## The services file: `recovery.toml`" in (DOCS / "configuration.md").read_text()


def refusal_codes_the_product_sends() -> set[str]:
    """Return every refusal ``code`` written in workflows/ and starter/ (literals and constants)."""
    codes: set[str] = set()
    for path in [*(REPO / "workflows").rglob("*.py"), *(REPO / "starter").rglob("*.py")]:
        source = path.read_text()
        constants = dict(re.findall(r'^([A-Z_]+)\s*=\s*"([a-z_]+)"', source, re.M))
        for value in re.findall(r'(?:\bcode\s*=\s*|"code":\s*|default_code\s*=\s*)("[a-z_]+"|[A-Z_]+\b)', source):
            if value.startswith('"'):
                codes.add(value.strip('"'))
            elif value in constants:
                codes.add(constants[value])
    return codes


def test_api_doc_lists_every_refusal_code_and_the_guard() -> None:
    refusals = section(DOCS / "api.md", "Refusals and their codes")
    listed = {
        code
        for row in re.findall(r"^\| (`.+?) \|", refusals, re.M)
        for code in re.findall(r"`([a-z_]+)`", row)
    }
    sent = refusal_codes_the_product_sends()
    assert {"approval_not_taken", "unchanged", "internal", "bad_field"} <= sent, sent
    assert sent <= listed, f"codes the product sends that docs/api.md does not list: {sorted(sent - listed)}"
    assert "`workflows/guard.py`" in refusals, "the paragraph about the guard"
    assert "No message fails a workflow task." in refusals


def test_changelog_starts_with_the_unreleased_version_and_keeps_every_release() -> None:
    text = CHANGELOG.read_text()
    versions = re.findall(r"^## (\d+\.\d+\.\d+)", text, re.M)
    assert text.splitlines()[0] == "# Changelog"
    assert re.findall(r"^## .+$", text, re.M)[0] == "## 0.9.0 (unreleased)"
    assert versions == ["0.9.0", "0.8.0", "0.7.0", "0.6.0", "0.5.0", "0.4.0", "0.3.0", "0.2.0", "0.1.0"]
    unreleased = section(CHANGELOG, "0.9.0 (unreleased)")
    for subject in ("mypy", "workflows/guard.py", "RECOVERY_BUILD_ID", "attempt_result",
                    "approval_not_taken", "`internal`", "docs/versioning.md"):
        assert subject in unreleased, f"0.9.0 says nothing of {subject}"


def test_compatibility_doc_says_what_the_original_and_the_reference_are() -> None:
    text = (DOCS / "compatibility.md").read_text()
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert {"The original", "The reference document", "Differences from the original"} <= set(headings)
    assert "enhanced_agent_bus.recovery_orchestrator" in section(DOCS / "compatibility.md", "The original")


def test_guarantees_doc_quotes_the_hostile_input_table_as_generated() -> None:
    generated = re.search(r"^(\d+) rows, (\d+) cells", (DOCS / "hostile-input.md").read_text(), re.M)
    assert generated, "docs/hostile-input.md has no 'N rows, M cells' line"
    rows, cells = generated.groups()
    prose = " ".join(section(DOCS / "guarantees.md", "Hostile input").split())
    assert f"{rows} inputs" in prose and f"{cells} cells" in prose, (
        f"docs/guarantees.md should quote {rows} inputs and {cells} cells (make hostile-doc)"
    )
    table = " ".join(section(DOCS / "guarantees.md", "Durability, and the other promises").split())
    assert f"{rows} hostile inputs" in table
