"""Where the receiver's lines go: stderr, one per request and one per outcome, redacted.

``recoveryctl serve`` and ``make dev`` show them so an operator can see whether
Alertmanager reached the receiver, and what became of each alert, without a debugger.
Only the receiver's own loggers are shown (``recoveryctl`` logs nothing else), and what
aiohttp says of a request it could not parse is one short line: quoting a stranger's
bytes in a traceback let anyone grow the log by a megabyte with a few requests.
"""

from __future__ import annotations

import logging
import sys

from activities.redaction import RedactingFilter

RECEIVER_LOGGERS = ("starter.receiver", "aiohttp.access")
SERVER_LOGGER = "aiohttp.server"
MAX_SERVER_LINE = 200


class OneShortLine(logging.Filter):
    """Keep a record's first ``MAX_SERVER_LINE`` characters, without its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage().splitlines()[0] if record.getMessage() else ""
        record.msg, record.args = text[:MAX_SERVER_LINE], None
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


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
    server = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, OneShortLine) for f in server.filters):
        server.addFilter(OneShortLine())
