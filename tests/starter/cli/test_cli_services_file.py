"""``recoveryctl schedule`` takes what its flags do not say from the services file.

A new user scheduled a service listed with ``strategy = "manual"``, a health check and
``approvers`` by hand: it ran with the built-in defaults instead (exponential backoff, no
check, anyone may approve). The file's settings now hold however a recovery is asked for.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.recoveryctl import Cli
from tests.helpers.servers import free_port
from tests.helpers.waiting import eventually

pytestmark = pytest.mark.timeout(120)


def _services_file(tmp_path: Path, service: str) -> dict[str, str]:
    path = tmp_path / "recovery.toml"
    path.write_text(
        f'[services.{service}]\nstrategy = "manual"\npriority = 3\napprovers = ["alice"]\n'
        f'health_check = {{kind = "tcp", host = "127.0.0.1", port = {free_port()}}}\n'
    )
    return {"RECOVERY_SERVICES_FILE": str(path)}


async def test_a_listed_service_is_scheduled_with_its_filed_settings(
    cli: Cli, service: str, tmp_path: Path
) -> None:
    env = _services_file(tmp_path, service)
    code, _, err = await cli.ctl("schedule", service, env=env)
    assert code == 0, err
    status = await eventually(
        lambda: cli.ctl_json("status"),
        lambda s: s["services"].get(service, {}).get("state") == "awaiting_manual",
    )
    assert status["services"][service]["strategy"] == "manual"
    assert status["services"][service]["priority"] == 3
    code, _, err = await cli.ctl("approve", service, "--operator", "mallory", env=env)
    assert code == 1 and "'mallory' is not an approver" in err, err


async def test_a_flag_overrides_the_file(cli: Cli, service: str, tmp_path: Path) -> None:
    env = _services_file(tmp_path, service)
    answer = await cli.ctl_json(
        "schedule", service, "--strategy", "manual", "--priority", "7", "--policy",
        '{"max_retry_attempts": 1}',
    )  # fmt: skip
    assert answer["outcome"] == "queued"
    status = await eventually(
        lambda: cli.ctl_json("status"),
        lambda s: s["services"].get(service, {}).get("state") == "awaiting_manual",
    )
    assert status["services"][service]["priority"] == 7
    code, _, err = await cli.ctl("approve", service, "--operator", "mallory", env=env)
    assert code == 0, err  # the policy given replaces the file's, approvers included


async def test_a_broken_services_file_is_bad_input(
    cli: Cli, service: str, tmp_path: Path
) -> None:
    path = tmp_path / "recovery.toml"
    path.write_text("[services.x]\nstrategy = 5\n")
    code, _, err = await cli.ctl("schedule", service, env={"RECOVERY_SERVICES_FILE": str(path)})
    assert code == 2 and err.startswith("recoveryctl: error: ") and "strategy" in err, err
