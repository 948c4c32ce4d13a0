"""Signed approve and cancel links: the awaiting-operator notification's way back in (SPEC §10).

A link names one action (``approve`` or ``cancel``), one service, one run of its
``ServiceRecovery``, the attempt that awaits an operator, and when it expires; an
HMAC-SHA256 over exactly those, keyed with ``RECOVERY_LINK_SECRET``, makes any change to
them detectable. The worker's notification activity signs (``LinkSigner.links``); the
receiver (``starter.receiver``) verifies (``verify_link``) and then asks the recovery
itself, which is what makes a link good once: an approval names its attempt and run,
and the recovery counts one approval per attempt, so a link used once (here, on
another receiver, or before a restart) is stale from then on.

Pure but for ``LinkSigner.from_env``: no clock and no I/O (the time is passed in), so
both sides and the tests share it.
The URL reads ``{base}/links/{action}?service=…&run=…&attempt=…&expires=…&sig=…``: a
query string, not path segments, because a service may be named ``..`` and clients
normalise such paths away.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal
from urllib.parse import urlencode

from activities.settings import DEFAULT_LINK_LIFETIME, RecoverySettings

LinkAction = Literal["approve", "cancel"]
ACTIONS: tuple[LinkAction, ...] = ("approve", "cancel")
LINKS_PATH = "/links"
# Shorter secrets are guessable offline from one link: refuse them where they are read.
MIN_SECRET_BYTES = 16
# What a link's fields may hold (checked before the signature, so a hostile query is
# refused cheaply and never echoed): a service name as SPEC §3 allows it, a Temporal
# run id (a UUID, but any id of letters, digits and dashes is accepted).
_SERVICE = re.compile(r"[A-Za-z0-9_.\-]{1,200}")
_RUN_ID = re.compile(r"[A-Za-z0-9\-]{1,100}")
# A number as the signer writes it: no leading zero (``01`` is not the signed ``1``), and
# an expiry of at most 11 digits (year 5138), which a datetime can hold.
_DIGITS = re.compile(r"0|[1-9][0-9]{0,10}")
_SIGNATURE = re.compile(r"[A-Za-z0-9_\-]{43}")
# Whom the link is for (optional): an approver's name as the services file lists it.
_OPERATOR = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
_NAMED = {"service": _SERVICE, "run": _RUN_ID, "attempt": _DIGITS, "expires": _DIGITS}
_SIGNED = {**_NAMED, "sig": _SIGNATURE}
_VERSION = "v1"


class LinkRefused(ValueError):
    """A link that does not verify: ``status`` is the HTTP status the receiver answers with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class LinkClaim:
    """What a verified link names."""

    action: LinkAction
    service_name: str
    run_id: str
    attempt: int
    expires_at: datetime
    # Whom the link was made for; None: anyone holding it (recorded as ``link``).
    operator: str | None = None


@dataclass(frozen=True)
class ApprovalLinks:
    """The two links an awaiting-operator notification carries."""

    approve_url: str
    cancel_url: str
    expires_at: datetime


@dataclass(frozen=True)
class LinkSigner:
    """Sign links on ``base_url`` (the receiver as operators reach it) with ``secret``."""

    base_url: str
    secret: bytes
    lifetime: timedelta = DEFAULT_LINK_LIFETIME

    def __post_init__(self) -> None:
        check_secret(self.secret)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LinkSigner | None:
        """Return the signer ``RECOVERY_RECEIVER_URL`` and the link secret set up, else None.

        Raises:
            ValueError: a setting is malformed (the message names its variable).
        """
        base_url = RecoverySettings.read("receiver_url", environ)
        secret = RecoverySettings.secret("link_secret", environ)
        lifetime = RecoverySettings.read("link_lifetime", environ)
        if base_url is None or secret is None:
            return None
        return cls(base_url, check_secret(secret, "RECOVERY_LINK_SECRET"), lifetime)

    def links(
        self,
        service_name: str,
        run_id: str,
        attempt: int,
        now: datetime,
        operator: str | None = None,
    ) -> ApprovalLinks:
        """Return the approve and cancel links for ``attempt`` of run ``run_id``, from ``now``.

        ``operator`` names whom the links are for: the recovery records the approval as
        theirs, so a service with ``approvers`` takes a link made for one of them (one
        pair of links per approver). Without it, the approval is recorded as ``link``.
        """
        expires_at = (now + self.lifetime).replace(microsecond=0)  # as the link carries it
        fields = (service_name, run_id, attempt, expires_at, operator)
        return ApprovalLinks(
            approve_url=self.url("approve", *fields),
            cancel_url=self.url("cancel", *fields),
            expires_at=expires_at,
        )

    def url(
        self,
        action: LinkAction,
        service_name: str,
        run_id: str,
        attempt: int,
        expires_at: datetime,
        operator: str | None = None,
    ) -> str:
        """Return one signed link.

        Raises:
            ValueError: a field the receiver would refuse (so no unusable link is sent),
                or ``expires_at`` without a timezone.
        """
        if expires_at.tzinfo is None:
            raise ValueError("expires_at needs a timezone (links carry UTC times)")
        query = {
            "service": service_name,
            "run": run_id,
            "attempt": str(attempt),
            "expires": str(int(expires_at.timestamp())),
        }
        if operator is not None:
            query["operator"] = operator
        _check_fields(query, _NAMED)
        query["sig"] = _signature(self.secret, action, query)
        return f"{self.base_url.rstrip('/')}{LINKS_PATH}/{action}?{urlencode(query)}"


def check_secret(secret: bytes, source: str = "the link secret") -> bytes:
    """Return ``secret`` if it is long enough to sign links with.

    Raises:
        ValueError: it is shorter than ``MIN_SECRET_BYTES``.
    """
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"{source} has {len(secret)} bytes; use at least {MIN_SECRET_BYTES} "
            "(e.g. `openssl rand -hex 32`)"
        )
    return secret


def verify_link(secret: bytes, action: str, query: Mapping[str, str], now: datetime) -> LinkClaim:
    """Return what the link names, if ``secret`` signed it and it has not expired at ``now``.

    Whether it is stale (another attempt or run, or used already) only the recovery can
    say: the receiver asks it next.

    Raises:
        LinkRefused: 404 for an unknown action, 400 for a malformed link, 403 for an
            altered one (or one signed with another secret), 410 for an expired one.
    """
    if action not in ACTIONS:
        raise LinkRefused(f"no such link action {action[:20]!r}: approve or cancel", 404)
    _check_fields(query, _SIGNED)
    wanted = _signature(secret, action, query)
    if not hmac.compare_digest(wanted.encode(), query["sig"].encode()):
        raise LinkRefused("this link's signature does not match: it was altered, or is not ours", 403)
    expires_at = datetime.fromtimestamp(int(query["expires"]), timezone.utc)
    if now >= expires_at:
        raise LinkRefused(f"this link expired at {expires_at:%Y-%m-%d %H:%M:%S} UTC", 410)
    return LinkClaim(
        action=action,
        service_name=query["service"],
        run_id=query["run"],
        attempt=int(query["attempt"]),
        expires_at=expires_at,
        operator=query.get("operator"),
    )


def _check_fields(query: Mapping[str, str], fields: Mapping[str, re.Pattern[str]]) -> None:
    """Refuse a link whose fields are missing or malformed (400), naming the field."""
    operator = query.get("operator")
    if operator is not None and not _OPERATOR.fullmatch(operator):
        raise LinkRefused("this link's 'operator' is malformed: it was cut short or altered", 400)
    for field, pattern in fields.items():
        value = query.get(field)
        if value is None:
            raise LinkRefused(f"this link has no {field!r}: it was cut short or altered", 400)
        if not pattern.fullmatch(value):
            raise LinkRefused(f"this link's {field!r} is malformed: it was cut short or altered", 400)
    if int(query["attempt"]) < 1:
        raise LinkRefused("this link's 'attempt' is malformed: attempts count from 1", 400)


def _signature(secret: bytes, action: str, query: Mapping[str, str]) -> str:
    """HMAC-SHA256 over the link's fields as one JSON array (unambiguous, whatever they hold)."""
    fields = [
        _VERSION,
        action,
        query["service"],
        query["run"],
        int(query["attempt"]),
        int(query["expires"]),
        query.get("operator", ""),
    ]
    digest = hmac.new(secret, json.dumps(fields).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
