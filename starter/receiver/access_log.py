"""Where the receiver's lines go: stderr, one per request and one per outcome, redacted.

``recoveryctl serve`` and ``make dev`` show them so an operator can see whether
Alertmanager reached the receiver, and what became of each alert, without a debugger.
Only the receiver's own loggers are shown (``recoveryctl`` logs nothing else).
"""

from __future__ import annotations

import logging
import sys

from activities.redaction import RedactingFilter

RECEIVER_LOGGERS = ("starter.receiver", "aiohttp.access")


def show_receiver_log() -> None:
    """Write the receiver's INFO lines to stderr, secrets masked; calling it again adds nothing."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s receiver %(message)s"))
    handler.addFilter(RedactingFilter())
    for name in RECEIVER_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        if not logger.handlers:
            logger.addHandler(handler)
