"""The watch's ``configure_watch`` door refuses settings the services file would refuse."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from workflows.circuit_watch_models import ConfigureWatchInput


def settings(**depends_on: list[str]) -> dict[str, Any]:
    return {"settings": {"services": {n: {"policy": {"depends_on": d}} for n, d in depends_on.items()}}}


def test_a_depends_on_loop_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError, match=r"depends_on cycle: api -> db -> cache -> api"):
        ConfigureWatchInput.model_validate(settings(api=["db"], db=["cache"], cache=["api"]))


def test_a_chain_without_a_loop_is_taken() -> None:
    taken = ConfigureWatchInput.model_validate(settings(api=["db"], db=["cache"], cache=[]))
    assert taken.settings is not None
    assert taken.settings.services["api"].policy is not None
    assert taken.settings.services["api"].policy.depends_on == ["db"]


def test_depends_on_in_the_defaults_or_on_an_unlisted_service_is_refused() -> None:
    with pytest.raises(ValidationError, match="defaults: depends_on is not allowed"):
        ConfigureWatchInput.model_validate(
            {"settings": {"defaults": {"policy": {"depends_on": ["x"]}}}}
        )
    with pytest.raises(ValidationError, match=r"services.a: depends_on: unknown service 'ghost'"):
        ConfigureWatchInput.model_validate(settings(a=["ghost"]))
