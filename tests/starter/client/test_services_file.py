"""The services file: what loads, how defaults merge, and how each mistake is named.

Every test runs in a temporary directory holding ``recovery.toml``, so messages
start with ``recovery.toml:`` exactly as an operator running the worker sees them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from starter.client.services_file import (
    ENV_VAR,
    ServicesFileError,
    load_services_file,
    load_services_from_env,
    services_file_from_env,
)
from tests.helpers.paths import REPO
from workflows.circuit_watch_models import MAX_CATALOG_BYTES, WatchInput
from workflows.models import Jitter, RecoveryStrategy

EXAMPLE = REPO / "recovery.example.toml"
FILE = "recovery.toml"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory, with no services file named by the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_VAR, raising=False)
    return tmp_path


def load(text: str) -> WatchInput:
    """Write ``text`` to ./recovery.toml and load it."""
    Path(FILE).write_text(text, encoding="utf-8")
    return load_services_file(FILE)


def problems(text: str) -> list[str]:
    """Write ``text`` to ./recovery.toml and return the lines of the error it raises."""
    with pytest.raises(ServicesFileError) as caught:
        load(text)
    return str(caught.value).splitlines()


def only_problem(text: str) -> str:
    """Return the one problem ``text`` has."""
    lines = problems(text)
    assert len(lines) == 1, lines
    return lines[0]


# What loads


def test_the_example_file_loads_with_its_defaults_merged() -> None:
    watch = load_services_file(EXAMPLE)
    assert watch.source == str(EXAMPLE)
    assert watch.recover_unlisted is True
    assert list(watch.services) == ["db", "cache", "api", "billing.v2", "payments", "reports"]
    assert watch.defaults.priority == 5 and watch.defaults.policy is not None
    assert watch.defaults.policy.max_attempts_per_hour == 20
    db = watch.services["db"]
    assert db.priority == 1 and db.strategy is RecoveryStrategy.EXPONENTIAL_BACKOFF
    assert db.policy is not None and db.policy.max_retry_attempts == 10
    assert db.policy.jitter is Jitter.EQUAL  # from [defaults]
    payments = watch.services["payments"]
    assert payments.strategy is RecoveryStrategy.MANUAL
    assert payments.policy is not None and payments.policy.depends_on == ["api", "db"]
    reports = watch.services["reports"]
    assert reports.priority == 9 and reports.policy == watch.defaults.policy


def test_a_service_overrides_the_defaults_and_inherits_the_rest() -> None:
    watch = load(
        """
        [defaults]
        strategy = "linear_backoff"
        priority = 5
        max_retry_attempts = 7
        jitter = "full"

        [services.db]
        priority = 1
        max_retry_attempts = 2
        """
    )
    db = watch.services["db"]
    assert (db.strategy, db.priority) == (RecoveryStrategy.LINEAR_BACKOFF, 1)
    assert db.policy is not None
    assert (db.policy.max_retry_attempts, db.policy.jitter) == (2, Jitter.FULL)
    assert watch.defaults.priority == 5
    assert watch.defaults.policy is not None and watch.defaults.policy.max_retry_attempts == 7


def test_a_services_health_check_replaces_the_defaults_whole() -> None:
    watch = load(
        """
        [defaults]
        health_check = { kind = "http", url = "http://127.0.0.1/health", expected_status = [204] }

        [services.db]
        health_check = { kind = "tcp", host = "127.0.0.1", port = 5432 }

        [services.api]
        priority = 2
        """
    )
    db, api = watch.services["db"].policy, watch.services["api"].policy
    assert db is not None and db.health_check is not None
    assert db.health_check.model_dump() == {
        "kind": "tcp", "host": "127.0.0.1", "port": 5432, "timeout_ms": 2000
    }
    assert api is not None and watch.defaults.policy is not None
    assert api.health_check == watch.defaults.policy.health_check
    assert api.health_check is not None and api.health_check.kind == "http"


def test_no_policy_field_anywhere_leaves_the_policy_to_the_coordinator() -> None:
    watch = load(
        """
        [defaults]
        strategy = "immediate"
        priority = 3

        [services.db]
        priority = 1

        [services.api]
        """
    )
    assert watch.defaults.policy is None
    assert watch.services["db"].policy is None and watch.services["api"].policy is None
    assert watch.services["api"].priority == 3
    assert watch.services["api"].strategy is RecoveryStrategy.IMMEDIATE


def test_only_services_with_policy_fields_get_a_policy_when_defaults_set_none() -> None:
    watch = load(
        """
        [services.db]
        max_retry_attempts = 3

        [services.api]
        priority = 2
        """
    )
    db = watch.services["db"].policy
    assert db is not None and db.max_retry_attempts == 3 and db.initial_delay_ms == 1000
    assert watch.services["api"].policy is None


def test_an_empty_file_is_an_empty_catalog_that_recovers_everything() -> None:
    watch = load("")
    assert watch == WatchInput(source=FILE)
    assert watch.settings_for("anything") == watch.defaults


def test_recover_unlisted_false_skips_unlisted_services() -> None:
    watch = load("recover_unlisted = false\n[services.db]\n")
    assert watch.recover_unlisted is False
    assert watch.settings_for("other") is None


def test_a_dotted_service_name_is_written_quoted() -> None:
    watch = load('[services."billing.v2"]\npriority = 4\n')
    assert watch.services["billing.v2"].priority == 4


def test_the_loaded_catalog_round_trips_through_json() -> None:
    watch = load_services_file(EXAMPLE)
    assert WatchInput.model_validate_json(watch.model_dump_json()) == watch


# Mistakes, each named by file, table and field


def test_an_unknown_strategy_lists_the_known_ones() -> None:
    assert only_problem('[services.api]\nstrategy = "fast"\n') == (
        "recovery.toml: [services.api] strategy: unknown strategy 'fast' "
        "(expected one of exponential_backoff, linear_backoff, immediate, manual)"
    )


def test_a_policy_bound_keeps_the_models_message() -> None:
    assert only_problem("[services.db]\ninitial_delay_ms = -1\n") == (
        "recovery.toml: [services.db] initial_delay_ms must be >= 0"
    )


def test_an_upper_bound_keeps_the_models_message() -> None:
    line = only_problem("[services.db]\nmax_retry_attempts = 5000\n")
    assert line.startswith("recovery.toml: [services.db] max_retry_attempts must be <= 1000")


def test_a_rule_across_defaults_and_service_is_the_services_problem() -> None:
    assert only_problem(
        """
        [defaults]
        max_delay_ms = 5000

        [services.slow]
        initial_delay_ms = 10000

        [services.fine]
        priority = 2
        """
    ) == "recovery.toml: [services.slow] max_delay_ms must be >= initial_delay_ms"


def test_a_problem_in_defaults_is_reported_once_not_per_service() -> None:
    assert problems(
        """
        [defaults]
        backoff_multiplier = 0.5
        jitter = "sometimes"

        [services.db]
        [services.api]
        priority = 2
        """
    ) == [
        "recovery.toml: [defaults] jitter: Input should be 'none', 'full' or 'equal' "
        "(got 'sometimes')",
    ]
    assert problems("[defaults]\nbackoff_multiplier = 0.5\n[services.db]\n[services.api]\n") == [
        "recovery.toml: [defaults] backoff_multiplier must be >= 1.0"
    ]


def test_defaults_are_checked_on_their_own_for_unlisted_services() -> None:
    assert only_problem(
        """
        [defaults]
        initial_delay_ms = 90000

        [services.db]
        max_delay_ms = 120000
        """
    ) == "recovery.toml: [defaults] max_delay_ms must be >= initial_delay_ms"


def test_a_dependency_on_an_unlisted_service_is_named() -> None:
    line = only_problem('[services.db]\n[services.api]\ndepends_on = ["dbb"]\n')
    assert line == (
        "recovery.toml: [services.api] depends_on: unknown service 'dbb' "
        "(not in [services]; did you mean 'db'?)"
    )
    assert only_problem('[services.api]\ndepends_on = ["queue"]\n') == (
        "recovery.toml: [services.api] depends_on: unknown service 'queue' (not in [services])"
    )


def test_a_service_cannot_depend_on_itself() -> None:
    assert only_problem('[services.api]\ndepends_on = ["api"]\n') == (
        "recovery.toml: [services.api] depends_on: 'api' cannot depend on itself"
    )


def test_a_dependency_cycle_is_reported_with_its_path() -> None:
    assert only_problem(
        """
        [services.api]
        depends_on = ["db"]

        [services.db]
        depends_on = ["api"]
        """
    ) == "recovery.toml: depends_on cycle: api -> db -> api"


def test_a_long_cycle_is_found_past_a_shared_dependency() -> None:
    assert only_problem(
        """
        [services.a]
        depends_on = ["shared", "b"]
        [services.shared]
        [services.b]
        depends_on = ["shared", "c"]
        [services.c]
        depends_on = ["a"]
        """
    ) == "recovery.toml: depends_on cycle: a -> b -> c -> a"


def test_a_long_chain_of_dependencies_loads() -> None:
    chain = "".join(
        f'[services.s{i}]\ndepends_on = ["s{i + 1}"]\n' for i in range(3000)
    ) + "[services.s3000]\n"
    assert len(load(chain).services) == 3001


def test_depends_on_in_defaults_is_refused_with_the_reason() -> None:
    line = only_problem('[defaults]\ndepends_on = ["db"]\n[services.db]\n')
    assert line.startswith("recovery.toml: [defaults] depends_on: not allowed in [defaults]")
    assert "depend on itself" in line


def test_an_invalid_dependency_name_is_reported_once() -> None:
    line = only_problem('[services.api]\ndepends_on = ["no spaces"]\n')
    assert line.startswith(
        "recovery.toml: [services.api] depends_on: service_name 'no spaces' is invalid"
    )


def test_depends_on_must_be_an_array() -> None:
    assert only_problem('[services.db]\n[services.api]\ndepends_on = "db"\n') == (
        "recovery.toml: [services.api] depends_on: Input should be a valid array (got 'db')"
    )


def test_an_unknown_field_suggests_the_closest_one() -> None:
    assert only_problem("[services.api]\npriorty = 2\n") == (
        "recovery.toml: [services.api] unknown field 'priorty' (did you mean 'priority'?)"
    )
    assert only_problem("[defaults]\nmax_retries = 2\n") == (
        "recovery.toml: [defaults] unknown field 'max_retries' "
        "(did you mean 'max_retry_attempts'?)"
    )


def test_a_pinned_field_is_not_a_file_field() -> None:
    assert only_problem('[services.api]\nconstitutional_hash = "x"\n') == (
        "recovery.toml: [services.api] unknown field 'constitutional_hash'"
    )


def test_a_top_level_key_written_under_a_table_says_where_it_goes() -> None:
    line = only_problem("[defaults]\nrecover_unlisted = false\n")
    assert line == (
        "recovery.toml: [defaults] unknown field 'recover_unlisted': "
        "a top-level key goes above the file's first [table]"
    )


def test_an_unquoted_dotted_name_says_to_quote_it() -> None:
    assert only_problem("[services.billing.v2]\npriority = 2\n") == (
        "recovery.toml: [services.billing] unknown field 'v2': a service name with a dot "
        'is quoted: [services."billing.v2"]'
    )


def test_an_unknown_top_level_key_or_table_is_named() -> None:
    assert problems("timeout = 3\n[service.db]\npriority = 1\n") == [
        "recovery.toml: unknown top-level key 'timeout'",
        "recovery.toml: unknown top-level key 'service' (did you mean 'services'?)",
    ]


def test_toml_syntax_errors_give_the_line() -> None:
    line = only_problem("[services.db]\npriority = 1\npriority 2\n")
    assert line.startswith("recovery.toml: invalid TOML: ")
    assert "line 3" in line


def test_an_invalid_service_name_is_named() -> None:
    line = only_problem('[services."no spaces"]\npriority = 1\n')
    assert line.startswith(
        "recovery.toml: [services.\"no spaces\"] service_name 'no spaces' is invalid"
    )


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ('priority = "high"', "priority: Input should be a valid integer (got 'high')"),
        ("priority = 1.5", "priority: Input should be a valid integer (got 1.5)"),
        (
            "max_retry_attempts = true",
            "max_retry_attempts: Input should be a valid integer (got True)",
        ),
        (
            'max_retry_attempts = "5"',
            "max_retry_attempts: Input should be a valid integer (got '5')",
        ),
        (
            "max_delay_ms = 1979-05-27",
            "max_delay_ms: Input should be a valid integer (got '1979-05-27')",
        ),
        (
            "backoff_multiplier = inf",
            "backoff_multiplier: Input should be a finite number (got inf)",
        ),
        (
            'escalate_to_manual = "yes"',
            "escalate_to_manual: Input should be a valid boolean (got 'yes')",
        ),
        (
            "max_attempts_per_hour = 0",
            "max_attempts_per_hour: Input should be greater than or equal to 1 (got 0)",
        ),
        (
            "strategy = 3",
            "strategy: unknown strategy 3 "
            "(expected one of exponential_backoff, linear_backoff, immediate, manual)",
        ),
    ],
)
def test_a_value_of_the_wrong_type_names_its_field(setting: str, expected: str) -> None:
    line = only_problem(f"[services.api]\n{setting}\n")
    assert line == f"recovery.toml: [services.api] {expected}"


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        ('{ kind = "grpc", host = "x" }',
         "health_check: unknown kind 'grpc' (expected one of http, tcp, callable)"),
        ('{ kind = "hosted", task_queue = "q", function = "f", host = "h" }',
         "health_check: unknown kind 'hosted' (expected one of http, tcp, callable)"),
        ('{ host = "x", port = 1 }',
         "health_check: missing kind (expected one of http, tcp, callable)"),
        ('"http://x/health"',
         'health_check: expected a table such as { kind = "http", url = "..." } '
         "(got 'http://x/health')"),
        ('{ kind = "tcp", host = "db" }', "health_check.port: Field required"),
        ('{ kind = "http", url = "ftp://x" }',
         "health_check.url: url must start with http:// or https:// (got 'ftp://x')"),
        ('{ kind = "http", url = "http://x", path = "/health" }',
         "health_check: unknown field 'path'"),
        ('{ kind = "callable", ref = "no_colon" }',
         "health_check.ref: ref must look like 'package.module:function' (got 'no_colon')"),
    ],
)
def test_a_bad_health_check_names_what_is_wrong(check: str, expected: str) -> None:
    assert only_problem(f"[services.db]\nhealth_check = {check}\n") == (
        f"recovery.toml: [services.db] {expected}"
    )


def test_recover_unlisted_must_be_a_boolean() -> None:
    assert only_problem('recover_unlisted = "no"\n') == (
        "recovery.toml: recover_unlisted: expected true or false (got 'no')"
    )


def test_services_and_each_service_must_be_tables() -> None:
    assert only_problem('services = ["db"]\n') == (
        "recovery.toml: [services] must be a table (got ['db'])"
    )
    assert problems('[services]\ndb = 1\napi = { depends_on = ["db"] }\n') == [
        "recovery.toml: [services.db] must be a table of settings (got 1)",
    ]


def test_a_catalog_too_large_for_the_schedule_is_refused() -> None:
    url = "http://" + "h" * 2000 + "/health"
    text = "".join(
        f'[services.s{i}]\nhealth_check = {{ kind = "http", url = "{url}" }}\n'
        for i in range(MAX_CATALOG_BYTES // 2000)
    )
    line = only_problem(text)
    assert line.startswith("recovery.toml: [services] too large: ")
    assert f"over the {MAX_CATALOG_BYTES}" in line


def test_every_problem_is_reported_one_per_line() -> None:
    assert problems(
        """
        [defaults]
        priorty = 1

        [services.db]
        initial_delay_ms = -5

        [services.api]
        strategy = "fast"
        depends_on = ["dbb"]
        """
    ) == [
        "recovery.toml: [defaults] unknown field 'priorty' (did you mean 'priority'?)",
        "recovery.toml: [services.api] strategy: unknown strategy 'fast' "
        "(expected one of exponential_backoff, linear_backoff, immediate, manual)",
        "recovery.toml: [services.db] initial_delay_ms must be >= 0",
        "recovery.toml: [services.api] depends_on: unknown service 'dbb' "
        "(not in [services]; did you mean 'db'?)",
    ]


def test_a_missing_file_is_an_error_naming_it() -> None:
    with pytest.raises(ServicesFileError, match=r"^nowhere\.toml: cannot read: "):
        load_services_file("nowhere.toml")


def test_the_error_is_a_value_error() -> None:
    assert issubclass(ServicesFileError, ValueError)


# Finding the file


def test_the_environment_names_the_file(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    named = in_tmp / "elsewhere.toml"
    named.write_text("[services.db]\npriority = 1\n", encoding="utf-8")
    Path(FILE).write_text("[services.other]\n", encoding="utf-8")
    monkeypatch.setenv(ENV_VAR, str(named))
    assert services_file_from_env() == named
    watch = load_services_from_env()
    assert list(watch.services) == ["db"] and watch.source == str(named)


def test_a_missing_file_named_by_the_environment_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Path(FILE).write_text("", encoding="utf-8")  # never a silent fallback
    monkeypatch.setenv(ENV_VAR, "/etc/typo.toml")
    with pytest.raises(ServicesFileError) as caught:
        services_file_from_env()
    assert str(caught.value) == "/etc/typo.toml: no such file (named by RECOVERY_SERVICES_FILE)"
    with pytest.raises(ServicesFileError):
        load_services_from_env()


def test_recovery_toml_in_the_working_directory_is_the_default() -> None:
    Path(FILE).write_text("[services.db]\n", encoding="utf-8")
    assert services_file_from_env() == Path(FILE)
    assert list(load_services_from_env().services) == ["db"]


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "")
    assert services_file_from_env() is None


def test_no_file_at_all_is_an_empty_catalog() -> None:
    assert services_file_from_env() is None
    assert load_services_from_env() == WatchInput()
