"""One model for every RECOVERY_* setting (activities/settings.py), and the table generated from it."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from activities.settings import RecoverySettings
from activities.settings_doc import (
    CONFIGURATION_DOC,
    configuration_table,
    documented_table,
    main,
    with_table,
)
from activities.target_vetting import TargetAllowList
from activities.worker_tuning import WorkerTuning
from tests.helpers.paths import REPO
from workflows.circuit_watch_models import (
    DEFAULT_INTERVAL_SECONDS,
    MAX_INTERVAL_SECONDS,
    MIN_INTERVAL_SECONDS,
)

PRODUCT = [REPO / "worker.py", *[
    path for package in ("workflows", "activities", "starter") for path in (REPO / package).rglob("*.py")
]]


def test_the_configuration_doc_table_is_the_one_the_model_renders() -> None:
    documented = documented_table(CONFIGURATION_DOC.read_text(encoding="utf-8"))
    assert documented == configuration_table(), (
        "docs/configuration.md's table and activities/settings.py disagree: run `make config-doc`"
    )


def test_every_field_is_documented_and_every_recovery_setting_read_is_a_field() -> None:
    variables = {RecoverySettings.variable(field) for field in RecoverySettings.model_fields}
    for field, info in RecoverySettings.model_fields.items():
        assert info.description, f"{field} has no description"
        assert isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("documented_default")
    named: set[str] = set()
    for path in PRODUCT:
        named.update(re.findall(r'\w*ENV\w*\s*=\s*"(RECOVERY_[A-Z_]+[A-Z])"', path.read_text()))
    assert named <= variables, f"read outside the model: {sorted(named - variables)}"


def test_direct_reads_of_recovery_variables_are_gone() -> None:
    direct = [
        f"{path.relative_to(REPO)}: {match}"
        for path in PRODUCT
        for match in re.findall(r'(?:environ(?:\.get\(|\[)|getenv\()\s*"RECOVERY_[A-Z_]*[A-Z]"', path.read_text())
    ]
    assert not direct, direct


def test_the_watch_interval_bounds_are_the_workflows() -> None:
    from activities import settings

    assert settings.DEFAULT_WATCH_INTERVAL_SECONDS == DEFAULT_INTERVAL_SECONDS
    assert settings.MIN_WATCH_INTERVAL_SECONDS == MIN_INTERVAL_SECONDS
    assert settings.MAX_WATCH_INTERVAL_SECONDS == MAX_INTERVAL_SECONDS


def test_defaults_when_nothing_is_set() -> None:
    settings = RecoverySettings.load({})
    assert settings.circuit_store == "sqlite:///.recovery/breakers.db"
    assert settings.services_file is None
    assert settings.watch_interval == timedelta(seconds=10)
    assert settings.health_check_modules == frozenset()
    assert settings.health_check_allow == TargetAllowList()
    assert settings.worker_tuning == WorkerTuning()
    assert settings.metrics_bind is None and settings.tracing is False and settings.build_id is None


def test_values_are_parsed(tmp_path: Path) -> None:
    services = tmp_path / "recovery.toml"
    services.write_text("")
    settings = RecoverySettings.load({
        "RECOVERY_CIRCUIT_STORE": "redis://redis:6379/0",
        "RECOVERY_SERVICES_FILE": str(services),
        "RECOVERY_WATCH_INTERVAL": "2.5",
        "RECOVERY_HEALTH_CHECK_MODULES": " a.b, ,c ",
        "RECOVERY_HEALTH_CHECK_ALLOW": "metadata.google.internal,169.254.170.2",
        "RECOVERY_WORKER_TUNING": "max_cached_workflows=2000,workflow_pollers=10",
        "RECOVERY_METRICS_BIND": "0.0.0.0:9464",
        "RECOVERY_TRACING": " Yes ",
        "RECOVERY_BUILD_ID": " abc123 ",
        "RECOVERY_SECRET_TOKEN": "not a field, not an error",
    })
    assert settings.circuit_store == "redis://redis:6379/0"
    assert settings.services_file == services
    assert settings.watch_interval == timedelta(seconds=2.5)
    assert settings.health_check_modules == {"a.b", "c"}
    assert settings.health_check_allow.allows_host("METADATA.google.internal")
    assert settings.worker_tuning.describe() == "max_cached_workflows=2000,workflow_pollers=10"
    assert settings.metrics_bind == "0.0.0.0:9464"
    assert settings.tracing is True and settings.build_id == "abc123"


@pytest.mark.parametrize("variable", ["RECOVERY_CIRCUIT_STORE", "RECOVERY_SERVICES_FILE",
                                      "RECOVERY_WATCH_INTERVAL", "RECOVERY_METRICS_BIND",
                                      "RECOVERY_BUILD_ID", "RECOVERY_TRACING"])
def test_empty_counts_as_unset(variable: str) -> None:
    assert RecoverySettings.load({variable: ""}) == RecoverySettings.load({})


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("RECOVERY_WATCH_INTERVAL", "soon", "RECOVERY_WATCH_INTERVAL='soon': expected a number of seconds"),
    ("RECOVERY_WATCH_INTERVAL", "0", "RECOVERY_WATCH_INTERVAL='0': the watch interval must be between 1 and 86400 seconds"),
    ("RECOVERY_SERVICES_FILE", "/etc/typo.toml", "/etc/typo.toml: no such file (named by RECOVERY_SERVICES_FILE)"),
    ("RECOVERY_WORKER_TUNING", "pollers", "RECOVERY_WORKER_TUNING: 'pollers' is not name=value"),
    ("RECOVERY_HEALTH_CHECK_ALLOW", "not a host!", "RECOVERY_HEALTH_CHECK_ALLOW: 'not a host!' is not a host name"),
    ("RECOVERY_BUILD_ID", "a:b", "RECOVERY_BUILD_ID='a:b': use letters, digits"),
])
def test_a_bad_value_is_a_value_error_naming_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        RecoverySettings.load({variable: value})
    assert str(caught.value).startswith(message)
    with pytest.raises(ValueError) as one:
        RecoverySettings.read(variable.removeprefix("RECOVERY_").lower(), {variable: value})
    assert str(one.value) == str(caught.value)


def test_reading_one_setting_ignores_a_bad_other() -> None:
    environ = {"RECOVERY_WATCH_INTERVAL": "0", "RECOVERY_CIRCUIT_STORE": "redis://r:6379/0"}
    assert RecoverySettings.read("circuit_store", environ) == "redis://r:6379/0"
    with pytest.raises(ValueError, match="RECOVERY_WATCH_INTERVAL"):
        RecoverySettings.load(environ)


def test_the_model_reads_this_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOVERY_WATCH_INTERVAL", "7")
    monkeypatch.setenv("RECOVERY_TRACING", "1")
    settings = RecoverySettings.load()
    assert settings.watch_interval == timedelta(seconds=7) and settings.tracing is True
    assert RecoverySettings.read("watch_interval") == timedelta(seconds=7)


def test_make_config_doc_rewrites_a_stale_table(tmp_path: Path) -> None:
    doc = tmp_path / "configuration.md"
    current = CONFIGURATION_DOC.read_text(encoding="utf-8")
    stale = current.replace("| `RECOVERY_TRACING` |", "| `RECOVERY_TRACING_OLD` |")
    assert stale != current
    doc.write_text(stale, encoding="utf-8")
    assert main(["--check", "--file", str(doc)]) == 1
    assert main(["--file", str(doc)]) == 0
    assert doc.read_text(encoding="utf-8") == with_table(current) == current
    assert main(["--check", "--file", str(doc)]) == 0
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^config-doc:.*\n\t.*python -m activities\.settings", makefile, re.M)
