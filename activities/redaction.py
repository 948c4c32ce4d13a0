"""One redaction rule for every text the product writes: logs, errors, details, CLI output.

README: "no secret in any history, query, status or log that the product writes". A
secret reaches a text in three shapes, and ``redact`` masks all three:

- **credentials in a URL**: ``redis://default:PW@host/0`` becomes
  ``redis://default:***@host/0`` (``rediss://``, ``http://``, a bare ``redis://:pw@``, a
  percent-encoded password alike; a user name alone, often a token, becomes ``***``);
- **the values of the worker's secret variables** (``RECOVERY_SECRET_*``, the ones
  health checks take headers from, and ``TEMPORAL_API_KEY``, ``RECOVERY_RECEIVER_TOKEN``,
  ``RECOVERY_LINK_SECRET``, the password of ``RECOVERY_CIRCUIT_STORE``'s URL …) in plain
  form and in the escaped forms an error quotes them in: Python's ``repr`` of the
  string or of its bytes (httpx: ``Illegal header value b'Bearer t0ken\\t'``), JSON,
  percent-encoding, the value without its surrounding whitespace, and the credential
  after an ``Authorization`` scheme (``t0ken`` of ``Bearer t0ken``);
- **Authorization-style credentials** in any text: ``Bearer xyz`` and ``Basic xyz``
  become ``Bearer ***``; ``Authorization: xyz``, ``password=xyz`` (an operator's note
  quoting one) and ``?token=xyz`` lose their value.

``redact_patterns`` applies the first and the last shape only: it reads no environment,
so workflow code (deterministic, no environment) may call it on what it records.
``RedactingFilter`` applies ``redact`` to every log record a handler writes (message,
arguments, traceback); ``install_log_redaction`` puts it on the root logger's handlers.

This module imports nothing of the project: workflows, starter and the CLI all use it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote, quote_plus, unquote, urlsplit

MASK = "***"

# Variables whose whole value is a secret, besides every RECOVERY_SECRET_* variable.
SECRET_ENV_PREFIX = "RECOVERY_SECRET_"
SECRET_VARIABLES = (
    "TEMPORAL_API_KEY",
    "TEMPORAL_TLS_CLIENT_KEY_DATA",
    "RECOVERY_RECEIVER_TOKEN",
    "RECOVERY_LINK_SECRET",
)
# Variables holding URLs (several, comma-separated): the password of each is a secret.
SECRET_URL_VARIABLES = ("RECOVERY_CIRCUIT_STORE", "RECOVERY_RECEIVER_URL")
# Variables holding webhook URLs, each whole a secret: a Slack-style URL carries its token in
# the path, others in the query, and anyone holding the URL can post to the channel.
SECRET_WHOLE_URL_VARIABLES = ("RECOVERY_NOTIFY_URLS",)

_SECRET_NAMES = frozenset(SECRET_VARIABLES + SECRET_URL_VARIABLES + SECRET_WHOLE_URL_VARIABLES)

# Shorter values are not masked where they appear: "on" or "1" would blank half a log.
MIN_SECRET_LENGTH = 4

# scheme://userinfo@ — the userinfo runs to the last "@" before the path (a raw "@" in a
# password is common in hand-written URLs), never across a "/", "?", "#" or whitespace.
# The user info runs to the last "@" before the path: a password may hold "#" or "?" (a
# parser then misreads the URL, and a pattern that stopped there left the password).
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s@'\"<>]*(?:@[^/\s@'\"<>]*)*)@")
# Bearer/Basic followed by a credential (not already masked, not a placeholder like <token>).
_AUTH_SCHEME = re.compile(
    r"\b(Bearer|BEARER|Basic|BASIC)(\s+)(?!\*\*\*)([A-Za-z0-9\-._~+/]+=*)"
)
# A header or key that carries a credential, then its value (after any scheme, in any case);
# a password given as "password=…" or "pwd: …", as someone writes it in a note, or as an
# environment file does ("DB_PASSWORD=…": the key may follow an underscore).
_AUTH_HEADER = re.compile(
    r"(?i)(?<![A-Za-z0-9])((?:proxy-)?authorization|x-api-key|api[-_]?key|pass(?:word|wd|phrase)|pwd)"
    r"(['\"]?\s*[:=]\s*['\"]?)"
    r"(?!\*\*\*|RECOVERY_SECRET_)((?:(?:bearer|basic|token|digest|negotiate|apikey)\s+)?)"
    r"(?!\*\*\*)([^\s'\",;&)}\]]+)"
)
# What a text holds wherever _AUTH_HEADER or _AUTH_SCHEME matches (lower-cased for the first).
_AUTH_HEADER_KEYS = ("authorization", "api", "pass", "pwd")
_AUTH_SCHEMES = ("Bearer", "BEARER", "Basic", "BASIC")
# A credential in a URL's query string.
_QUERY_SECRET = re.compile(
    r"(?i)([?&](?:access_token|token|api_key|apikey|key|password|secret|signature|sig)=)"
    r"(?!\*\*\*)[^&\s'\"#]+"
)
# "<scheme> <credential>", as an Authorization header's value is written.
_SCHEMED_VALUE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9-]{0,19})\s+(\S.*?)\s*$", re.DOTALL)


def hide_url_credentials(text: str) -> str:
    """Return ``text`` with the whole ``user:password@`` of every URL in it replaced by ``***@``.

    For refusals of a URL that must not carry credentials: neither the password nor
    the user name is repeated. ``redact`` keeps the user name, as a log reader wants.
    """
    return _URL_USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)


def _mask_userinfo(match: re.Match[str]) -> str:
    scheme, userinfo = match.group(1), match.group(2)
    user, colon, _ = userinfo.partition(":")
    if colon and MASK not in user:
        return f"{scheme}{user}:{MASK}@"  # user:password@, :password@
    return f"{scheme}{MASK}@"  # a user name alone is often a token


def redact_patterns(text: str) -> str:
    """Mask credentials by their shape alone: in URLs, after Bearer/Basic, in headers and queries.

    Reads no environment: deterministic, so workflow code may call it.
    """
    if not text:
        return text
    # Every log line passes here: a pattern runs only where the text holds what it needs
    # (each test is a necessary condition of its pattern, so the result is the same). In
    # ASCII only: ignoring case, the patterns also match "ſ" for "s" and "ı" for "i".
    if "://" in text and "@" in text:
        text = _URL_USERINFO.sub(_mask_userinfo, text)
    lowered = text.lower()
    if not text.isascii() or any(key in lowered for key in _AUTH_HEADER_KEYS):
        text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{MASK}", text)
    if any(scheme in text for scheme in _AUTH_SCHEMES):
        text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    if "=" in text and ("?" in text or "&" in text):
        text = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}{MASK}", text)
    return text


def redact(text: str, extra_secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with every secret in it masked (``***``).

    Args:
        text: what is about to be written (a log line, an error, a check's detail).
        extra_secrets: values to mask besides the process's secret variables.

    The secret variables are read from the environment on each call, so a value set
    after start-up (or by a test) is covered too.
    """
    if not text:
        return text
    values = _secret_values()
    extra = tuple(extra_secrets)
    if extra:
        values = values + tuple(v for v in extra if v)
    pattern = _pattern_for(values)
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return redact_patterns(text)


def secret_forms(value: str) -> set[str]:
    """Return ``value`` and every form an error or a log may quote it in.

    Forms shorter than ``MIN_SECRET_LENGTH`` are left out.
    """
    cores = {value, value.strip()}
    schemed = _SCHEMED_VALUE.match(value)
    if schemed:  # "Bearer t0ken": the credential alone is a secret too
        credential = schemed.group(2)
        cores.add(credential)
        if schemed.group(1).lower() == "basic":
            cores.update(_basic_parts(credential))
    forms: set[str] = set()
    for core in cores:
        forms.update(_escaped(core))
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def _escaped(value: str) -> set[str]:
    """Return ``value`` as written plainly, by repr (str and bytes), JSON and percent-encoding."""
    forms = {
        value,
        repr(value)[1:-1],
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        quote(value, safe=""),
        quote_plus(value, safe=""),
    }
    try:
        forms.add(repr(value.encode("utf-8", "surrogateescape"))[2:-1])
    except UnicodeError:
        pass
    # repr picks double quotes for a value holding a single one; the other quoting escapes it.
    forms.add(value.replace("\\", "\\\\").replace("'", "\\'"))
    forms.add(value.replace("\\", "\\\\").replace('"', '\\"'))
    return forms


def _basic_parts(credential: str) -> set[str]:
    """Return ``user:password`` and the password a Basic credential encodes."""
    try:
        decoded = base64.b64decode(credential, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return set()
    parts = {decoded}
    if ":" in decoded:
        parts.add(decoded.split(":", 1)[1])
    return parts


def _secret_values() -> tuple[str, ...]:
    """Return the secret values of this process's environment, as a hashable key."""
    values: list[str] = []
    for name in os.environ:  # names first: decoding every value cost each log line 10 µs
        if not (name.startswith(SECRET_ENV_PREFIX) or name in _SECRET_NAMES):
            continue
        value = os.environ.get(name, "")
        if not value:
            continue
        if name.startswith(SECRET_ENV_PREFIX) or name in SECRET_VARIABLES:
            values.append(value)
        elif name in SECRET_URL_VARIABLES:
            values.extend(_url_passwords(value))
        elif name in SECRET_WHOLE_URL_VARIABLES:
            values.extend(part.strip() for part in value.split(",") if part.strip())
    return tuple(sorted(values))


def _url_passwords(text: str) -> list[str]:
    """Return the password of every URL in ``text`` (comma-separated URLs), raw and decoded."""
    passwords: list[str] = []
    for part in text.split(","):
        try:
            password = urlsplit(part.strip()).password
        except ValueError:
            password = None
        if not password:
            match = _URL_USERINFO.search(part)
            password = match.group(2).partition(":")[2] if match else None
        if password:
            passwords.extend({password, unquote(password)})
    return passwords


@lru_cache(maxsize=32)
def _pattern_for(values: tuple[str, ...]) -> re.Pattern[str] | None:
    """Return one regular expression matching every form of every value, longest first."""
    forms: set[str] = set()
    for value in values:
        forms.update(secret_forms(value))
    if not forms:
        return None
    return re.compile("|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True)))


class RedactingFilter(logging.Filter):
    """Mask secrets in every record a handler writes: its message, arguments and traceback.

    The record is formatted first (``getMessage``), so a secret in an argument is
    masked too; the redacted text replaces the message and the arguments. Never drops
    a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; always keep it."""
        if getattr(record, "_recovery_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as it would
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        setattr(record, "_recovery_redacted", True)
        return True


def install_log_redaction(*loggers: logging.Logger) -> RedactingFilter:
    """Put one ``RedactingFilter`` on every handler of the root logger (and of ``loggers``).

    A handler's filter sees every record that reaches the handler, whichever logger made
    it (temporalio's, httpx's, an activity's or a workflow's): they all propagate to
    the root. Loggers that already have handlers of their own are covered too. Call it
    after ``logging.basicConfig``; calling it again adds no second filter.
    """
    redacting = RedactingFilter()
    targets = [logging.getLogger(), *loggers]
    targets += [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and logger.handlers
    ]
    for logger in targets:
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(redacting)
    return redacting
