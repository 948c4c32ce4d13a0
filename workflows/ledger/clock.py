"""How a time is shown to an operator in the coordinator's reasons."""

from __future__ import annotations

from datetime import datetime


def clock(when: datetime) -> str:
    """Show a time to an operator: ``2026-12-06 12:42:11 UTC``."""
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")
