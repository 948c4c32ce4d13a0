"""The activity package's input types import alone: no httpx, no circuit-breaker store."""

from __future__ import annotations

import subprocess
import sys


def test_importing_a_health_check_spec_pulls_in_no_activity_module() -> None:
    probe = (
        "import sys, activities.health_check_specs\n"
        "heavy = ['httpx', 'activities.health_checks', 'recovery_breakers.store',"
        " 'recovery_breakers.sqlite_store', 'activities.circuit_breakers']\n"
        "print([name for name in heavy if name in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
