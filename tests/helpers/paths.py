"""The repository's root, so a test in any folder names files the same way."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
