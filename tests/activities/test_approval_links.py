"""Signing and checking links, and the receiver's secrets, without any server.

What a link names is covered by its signature, field by field; the link's place in
the recovery (stale or not, used or not) is ``test_receiver_links``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from activities.approval_links import LinkRefused, LinkSigner, _signature, verify_link
from activities.settings import RecoverySettings
from starter.receiver.config import ReceiverConfig

SECRET = b"0123456789abcdef-secret"
NOW = datetime(2026, 12, 6, 12, 0, 30, 250_000, tzinfo=timezone.utc)


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def test_a_signed_link_names_its_action_service_run_attempt_and_expiry() -> None:
    links = LinkSigner("https://recovery.example/", SECRET).links("pay..ments", "run-1", 3, NOW)
    assert links.approve_url.startswith("https://recovery.example/links/approve?service=pay..ments&")
    assert links.expires_at == datetime(2026, 12, 6, 13, 0, 30, tzinfo=timezone.utc)
    claim = verify_link(SECRET, "approve", query_of(links.approve_url), NOW)
    assert (claim.action, claim.service_name, claim.run_id, claim.attempt) == ("approve", "pay..ments", "run-1", 3)
    assert verify_link(SECRET, "cancel", query_of(links.cancel_url), NOW).action == "cancel"


@pytest.mark.parametrize(
    ("action", "change", "status"),
    [
        ("cancel", {}, 403),  # an approve link used as a cancel link
        ("approve", {"service": "other"}, 403),
        ("approve", {"run": "run-2"}, 403),
        ("approve", {"attempt": "4"}, 403),
        ("approve", {"expires": "4102444800"}, 403),
        ("approve", {"sig": "x" * 43}, 403),
        ("approve", {"sig": "x" * 42}, 400),
        ("approve", {"attempt": "0"}, 400),
        ("approve", {"attempt": "-1"}, 400),
        ("approve", {"run": "run 1"}, 400),
        ("execute", {}, 404),
        ("approve", {"attempt": "03"}, 400),  # the same number, not the signed text
        ("approve", {"expires": "999999999999"}, 400),  # beyond any date
    ],
)
def test_an_altered_link_is_refused(action: str, change: dict[str, str], status: int) -> None:
    url = LinkSigner("http://r", SECRET).links("api", "run-1", 3, NOW).approve_url
    with pytest.raises(LinkRefused) as refused:
        verify_link(SECRET, action, {**query_of(url), **change}, NOW)
    assert refused.value.status == status


def test_an_expiry_a_date_cannot_hold_is_refused_even_when_signed() -> None:
    """Only a holder of the secret could sign one; still a 400, never a server error."""
    url = LinkSigner("http://r", SECRET).links("api", "run-1", 3, NOW).approve_url
    query = {**query_of(url), "expires": "99999999999999"}
    query["sig"] = _signature(SECRET, "approve", query)
    with pytest.raises(LinkRefused) as refused:
        verify_link(SECRET, "approve", query, NOW)
    assert refused.value.status == 400


@pytest.mark.parametrize("missing", ["service", "run", "attempt", "expires", "sig"])
def test_a_link_cut_short_is_refused_naming_what_is_missing(missing: str) -> None:
    query = query_of(LinkSigner("http://r", SECRET).links("api", "run-1", 1, NOW).approve_url)
    del query[missing]
    with pytest.raises(LinkRefused, match=f"no '{missing}'") as refused:
        verify_link(SECRET, "approve", query, NOW)
    assert refused.value.status == 400


def test_a_link_expires_after_its_lifetime_and_another_secret_never_verifies() -> None:
    signer = LinkSigner("http://r", SECRET, lifetime=timedelta(minutes=5))
    query = query_of(signer.links("api", "run-1", 1, NOW).approve_url)
    verify_link(SECRET, "approve", query, NOW + timedelta(minutes=4, seconds=29))
    with pytest.raises(LinkRefused, match="expired") as expired:
        verify_link(SECRET, "approve", query, NOW + timedelta(minutes=5))
    assert expired.value.status == 410
    with pytest.raises(LinkRefused) as foreign:
        verify_link(b"another-secret-of-16+bytes", "approve", query, NOW)
    assert foreign.value.status == 403


def test_a_short_secret_or_a_naive_time_is_refused_when_signing() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        LinkSigner("http://r", b"short")
    with pytest.raises(ValueError, match="timezone"):
        LinkSigner("http://r", SECRET).links("api", "run-1", 1, NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="malformed"):
        LinkSigner("http://r", SECRET).links("no spaces", "run-1", 1, NOW)


def test_links_are_on_only_with_an_address_and_a_secret(tmp_path: Path) -> None:
    assert LinkSigner.from_env({}) is None
    assert LinkSigner.from_env({"RECOVERY_RECEIVER_URL": "http://r"}) is None
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET + b"\n")
    signer = LinkSigner.from_env(
        {
            "RECOVERY_RECEIVER_URL": "https://recovery.example",
            "RECOVERY_LINK_SECRET_FILE": str(secret_file),
            "RECOVERY_LINK_LIFETIME": "600",
        }
    )
    assert signer is not None and signer.secret == SECRET and signer.lifetime == timedelta(minutes=10)
    with pytest.raises(ValueError, match="RECOVERY_LINK_SECRET has 5 bytes"):
        LinkSigner.from_env({"RECOVERY_RECEIVER_URL": "http://r", "RECOVERY_LINK_SECRET": "short"})


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"RECOVERY_LINK_SECRET": "a" * 20, "RECOVERY_LINK_SECRET_FILE": "{file}"}, "both set"),
        ({"RECOVERY_LINK_SECRET_FILE": "{empty}"}, "is empty"),
        ({"RECOVERY_LINK_SECRET_FILE": "/no/such/file"}, "RECOVERY_LINK_SECRET_FILE"),
        ({"RECOVERY_LINK_LIFETIME": "30"}, "RECOVERY_LINK_LIFETIME: between 60 and 604800"),
        ({"RECOVERY_LINK_LIFETIME": "soon"}, "RECOVERY_LINK_LIFETIME"),
        ({"RECOVERY_RECEIVER_URL": "ftp://x"}, "RECOVERY_RECEIVER_URL"),
    ],
)
def test_bad_link_settings_name_their_variable(tmp_path: Path, environ: dict[str, str], message: str) -> None:
    (tmp_path / "file").write_text("a" * 20)
    (tmp_path / "empty").write_text("\n")
    environ = {key: value.format(file=tmp_path / "file", empty=tmp_path / "empty") for key, value in environ.items()}
    with pytest.raises(ValueError, match=message):
        LinkSigner.from_env({"RECOVERY_RECEIVER_URL": "http://r", **environ})


def test_the_receiver_refuses_to_start_without_a_good_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECOVERY_RECEIVER_TOKEN", raising=False)
    monkeypatch.delenv("RECOVERY_RECEIVER_TOKEN_FILE", raising=False)
    monkeypatch.delenv("RECOVERY_SERVICES_FILE", raising=False)
    with pytest.raises(ValueError, match="set RECOVERY_RECEIVER_TOKEN"):
        ReceiverConfig.from_env()
    for token, message in (("short", "at least 16"), ("has spaces in it, sadly", "printable ASCII")):
        monkeypatch.setenv("RECOVERY_RECEIVER_TOKEN", token)
        with pytest.raises(ValueError, match=message):
            ReceiverConfig.from_env()
    monkeypatch.setenv("RECOVERY_RECEIVER_TOKEN", "a-good-token-0123456789")
    config = ReceiverConfig.from_env()
    assert config.token == b"a-good-token-0123456789" and "0123456789" not in repr(config)
    assert RecoverySettings.secret("receiver_token") == b"a-good-token-0123456789"
