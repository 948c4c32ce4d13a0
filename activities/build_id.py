"""A worker's build id: what ``RECOVERY_BUILD_ID`` may hold, and the default when unset.

Workers are versions of a Worker Deployment (``starter.client.deployment``); each names
its build. The id goes into the server's version name, visibility queries and shell
commands, so it is checked here before anything connects.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

BUILD_ID_ENV = "RECOVERY_BUILD_ID"
DISTRIBUTION = "recovery-orchestrator"
MAX_BUILD_ID_LENGTH = 64
# A package version (0.9.0, 0.9.0rc1, 0.9.0+g1a2b3c), a git sha, an image tag: letters,
# digits and . _ + - , starting with a letter or digit. No ':' (the server joins deployment
# and build as "name:build"), no '/', no spaces or quotes (it goes into visibility queries
# and shell commands), and not the server's reserved "__unversioned__".
BUILD_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def parse_build_id(text: str, source: str = BUILD_ID_ENV) -> str:
    """Return ``text`` as a build id, or raise ValueError saying what is wrong with it."""
    build_id = text.strip()
    if not build_id:
        raise ValueError(f"{source} is empty: give the build's id, e.g. {source}=0.9.0")
    if len(build_id) > MAX_BUILD_ID_LENGTH:
        raise ValueError(
            f"{source} is {len(build_id)} characters long; at most {MAX_BUILD_ID_LENGTH}"
        )
    if not BUILD_ID_PATTERN.fullmatch(build_id):
        raise ValueError(
            f"{source}={build_id!r}: use letters, digits and . _ + - only, starting with a "
            "letter or digit (e.g. 0.9.0 or a git sha)"
        )
    return build_id


def default_build_id() -> str:
    """Return the installed package's version (the build id when none is given)."""
    try:
        return package_version(DISTRIBUTION)
    except PackageNotFoundError:
        raise ValueError(
            f"the {DISTRIBUTION} package is not installed, so it has no version to use as "
            f"build id: install it, or set {BUILD_ID_ENV}"
        ) from None
