"""The one redaction rule (``activities.redaction``), shape by shape, and its log filter.

Issue 19, rows 1–3: "no secret in any history, query, status or log that the product
writes". Each shape of secret a text can carry is masked: credentials in URLs, the
values of the worker's secret variables in plain and escaped forms, Authorization-style
credentials. The filter masks every record a handler of the root logger writes,
whichever logger made it (ours, temporalio's, httpx's, an activity's).
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator

import pytest

from activities.redaction import (
    RedactingFilter,
    install_log_redaction,
    redact,
    redact_patterns,
    secret_forms,
)


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    """A token of this test's own, in RECOVERY_SECRET_X with a trailing tab (the probe's)."""
    value = f"t0ken{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("RECOVERY_SECRET_X", f"Bearer {value}\t")
    return value


# --- credentials in URLs ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://default:PW-x1@host/0", "redis://default:***@host/0"),
        ("rediss://user:pw-x1@h:6380/1", "rediss://user:***@h:6380/1"),
        ("http://user:pw-x1@h/health", "http://user:***@h/health"),
        ("store redis://:pw-x1@127.0.0.1:6379/0 down", "store redis://:***@127.0.0.1:6379/0 down"),
        ("redis://default:p%40ss%3Aw0rd@h/0", "redis://default:***@h/0"),
        ("redis://default:p@ss@h/0", "redis://default:***@h/0"),  # a raw "@" in the password
        ("https://ghp_tokenonly@github.com/x", "https://***@github.com/x"),
        ("'redis://u:pw-x1@h' and \"http://a:b@c\"", "'redis://u:***@h' and \"http://a:***@c\""),
        ("http://ok/p@q and mailto:a@b", "http://ok/p@q and mailto:a@b"),  # no userinfo
    ],
)
def test_credentials_in_urls_are_masked_keeping_the_user(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact_patterns(text) == expected


def test_the_password_of_the_store_url_is_masked_wherever_it_appears(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RECOVERY_CIRCUIT_STORE", "redis://default:p%40ssW0rd-19@127.0.0.1:6379/0")
    text = "AUTH failed with p@ssW0rd-19 (p%40ssW0rd-19)"
    assert redact(text) == "AUTH failed with *** (***)"


# --- the values of secret variables, in every escaped form ---


def test_a_secret_value_is_masked_in_plain_and_escaped_forms(token: str) -> None:
    value = f"Bearer {token}\t"
    quoted = [
        value,
        repr(value),  # 'Bearer t0ken…\t'
        repr(value.encode()),  # b'Bearer t0ken…\t', as httpx's LocalProtocolError says
        json.dumps(value),  # "Bearer t0ken…\t"
        value.strip(),
        token,  # the credential alone
        f"Illegal header value b'Bearer {token}\\t'",
        json.dumps({"detail": f"x {value!r}"}),  # JSON of a repr: escaped twice
    ]
    for text in quoted:
        assert token not in redact(text), text


def test_the_credential_of_a_basic_value_is_masked_decoded_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RECOVERY_SECRET_BASIC", "Basic YWRtaW46czNjcmV0LXB3LTE5")  # admin:s3cret-pw-19
    out = redact("login admin:s3cret-pw-19 refused; header YWRtaW46czNjcmV0LXB3LTE5")
    assert "s3cret-pw-19" not in out and "YWRtaW46" not in out


def test_other_secret_variables_and_extra_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_API_KEY", "api-key-value-19")
    monkeypatch.setenv("RECOVERY_RECEIVER_TOKEN", "receiver-token-19")
    out = redact("a api-key-value-19 b receiver-token-19 c given-19", ["given-19"])
    assert out == "a *** b *** c ***"


def test_a_webhook_url_is_masked_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Slack-style URL carries its token in the path: the password rule alone missed it."""
    monkeypatch.setenv(
        "RECOVERY_NOTIFY_URLS",
        "https://hooks.example/services/T1/B2/path-token-19, http://127.0.0.1:9/hook?key=query-19",
    )
    out = redact("post https://hooks.example/services/T1/B2/path-token-19 then "
                 "http://127.0.0.1:9/hook?key=query-19 failed")  # fmt: skip
    assert out == "post *** then *** failed"


def test_short_values_are_not_masked_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOVERY_SECRET_SHORT", "on")
    assert redact("the watch is on") == "the watch is on"
    assert secret_forms("on") == set()


# --- Authorization-style credentials ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bearer abc.def-123", "Bearer ***"),
        ("Basic dXNlcjpwdw==", "Basic ***"),
        ("Authorization: xyz123", "Authorization: ***"),
        ("authorization: bearer xyz123", "authorization: bearer ***"),
        ('{"Authorization": "Token xyz123"}', '{"Authorization": "Token ***"}'),
        ("GET https://h/x?token=abc&ok=1", "GET https://h/x?token=***&ok=1"),
        ("x-api-key=k123", "x-api-key=***"),
        # An operator's pause note quoting a password (the watch and coordinator keep notes).
        ("db maintenance, password=hunter2 until 6", "db maintenance, password=*** until 6"),
        ("Passwd: 's3cr3t'", "Passwd: '***'"),
        ("DB_PASSWORD=hunter22", "DB_PASSWORD=***"),  # as an environment file writes it
        ("paſſword=hunter22", "paſſword=***"),  # ignoring case, "ſ" is an "s"
    ],
)
def test_authorization_style_credentials_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "header 'Authorization' reads environment variable RECOVERY_SECRET_BILLING on the worker",
        "headers_from_env={'Authorization': 'RECOVERY_SECRET_MY_SERVICE'}",
        "holding 'Basic <base64 of user:password>' or 'Bearer <token>'",
        "health check for 'svc': False (GET http://127.0.0.1:8080/health answered 503)",
        "a basic check; a bearer token",
        "passwords are rotated weekly; the password field is empty",
    ],
)
def test_the_products_own_words_are_left_alone(text: str) -> None:
    assert redact(text) == text


# --- the log filter ---


@pytest.fixture
def root_stream() -> Iterator[io.StringIO]:
    """A handler on the root logger, as logging.basicConfig makes, with redaction installed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        install_log_redaction()
        assert any(isinstance(f, RedactingFilter) for f in handler.filters)
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.mark.parametrize(
    "name", ["recovery-worker", "temporalio.activity", "temporalio.workflow", "httpx", "asyncio"]
)
def test_every_logger_is_covered_message_arguments_and_traceback(
    root_stream: io.StringIO, token: str, name: str
) -> None:
    logger = logging.getLogger(name)
    value = f"Bearer {token}\t"
    logger.info("store %s", "redis://default:PW-log-19@h/0")
    logger.warning("header %r refused", value.encode())
    logger.info(f"plain {value}")  # noqa: G004 (a pre-formatted message, as some libraries log)
    try:
        raise ValueError(f"Illegal header value {value.encode()!r}")
    except ValueError:
        logger.exception("activity failed with %s", repr(value))
    logger.info("with stack", stack_info=True, extra={"x": 1})
    text = root_stream.getvalue()
    assert token not in text and "PW-log-19" not in text, text
    assert "redis://default:***@h/0" in text and "Traceback" in text and "ValueError" in text


def test_installing_twice_adds_one_filter(root_stream: io.StringIO) -> None:
    install_log_redaction()
    handler = logging.getLogger().handlers[-1]
    assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1


def test_a_bad_format_string_is_left_for_the_handler_to_report() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d", ("not a number",), None)
    assert RedactingFilter().filter(record) is True
