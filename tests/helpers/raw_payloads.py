"""Payloads exactly as a client in any language may send them, past the Python converter."""

from __future__ import annotations

from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue


def raw_json(text: str) -> RawValue:
    """Return a payload holding ``text`` as sent, e.g. ``1e400`` that Python cannot write."""
    return RawValue(Payload(metadata={"encoding": b"json/plain"}, data=text.encode()))
