"""What a receiver runs with: its token, limits, label, link secret and the services file.

Read once when ``recoveryctl serve`` starts (``ReceiverConfig.from_env``), so a bad
setting stops it there, naming the variable, instead of failing requests later.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from activities.approval_links import check_secret
from activities.settings import (
    DEFAULT_RECEIVER_LABEL,
    DEFAULT_RECEIVER_MAX_BODY,
    DEFAULT_RECEIVER_READ_TIMEOUT,
    RecoverySettings,
)
from starter.client.services_file import load_services_from_env
from workflows.circuit_watch_models import WatchInput
from workflows.constants import COORDINATOR_WORKFLOW_ID, TASK_QUEUE

# A token shorter than this is guessable; Alertmanager sends whatever it is given.
MIN_TOKEN_BYTES = 16


@dataclass(frozen=True)
class ReceiverConfig:
    """The receiver's settings (``RECOVERY_RECEIVER_*``, ``RECOVERY_LINK_SECRET``, the services file)."""

    token: bytes
    label: str = DEFAULT_RECEIVER_LABEL
    max_body: int = DEFAULT_RECEIVER_MAX_BODY
    read_timeout: float = DEFAULT_RECEIVER_READ_TIMEOUT
    # None: the receiver serves no links (``/links/…`` answers 404).
    link_secret: bytes | None = None
    # The services file as the worker loads it: whom to recover, with which policy.
    services: WatchInput = field(default_factory=WatchInput)
    coordinator_workflow_id: str = COORDINATOR_WORKFLOW_ID
    task_queue: str = TASK_QUEUE

    def __post_init__(self) -> None:
        check_token(self.token)
        if self.link_secret is not None:
            check_secret(self.link_secret, "RECOVERY_LINK_SECRET")

    def __repr__(self) -> str:  # the token and the secret never reach a log line
        links = self.link_secret is not None
        return f"ReceiverConfig(label={self.label!r}, max_body={self.max_body}, links={links})"

    @classmethod
    def from_env(cls) -> ReceiverConfig:
        """Return the settings of this process's environment, and the services file it names.

        Raises:
            ValueError: a setting is missing or malformed; the message names its variable.
            ServicesFileError: the services file has problems (a ``ValueError`` too).
        """
        token = RecoverySettings.secret("receiver_token")
        if token is None:
            raise ValueError(
                "set RECOVERY_RECEIVER_TOKEN (or RECOVERY_RECEIVER_TOKEN_FILE): the token every "
                "request must carry (Alertmanager: http_config.authorization.credentials)"
            )
        return cls(
            token=token,
            label=RecoverySettings.read("receiver_label"),
            max_body=RecoverySettings.read("receiver_max_body"),
            read_timeout=RecoverySettings.read("receiver_read_timeout"),
            link_secret=RecoverySettings.secret("link_secret"),
            services=load_services_from_env(),
        )


def check_token(token: bytes) -> bytes:
    """Return ``token`` if it is long enough and fits in an HTTP header.

    Raises:
        ValueError: naming ``RECOVERY_RECEIVER_TOKEN`` and the rule.
    """
    if len(token) < MIN_TOKEN_BYTES:
        raise ValueError(
            f"RECOVERY_RECEIVER_TOKEN has {len(token)} bytes; use at least {MIN_TOKEN_BYTES} "
            "(e.g. `openssl rand -hex 32`)"
        )
    if not all(0x21 <= byte <= 0x7E for byte in token):
        raise ValueError(
            "RECOVERY_RECEIVER_TOKEN must be printable ASCII without spaces (it travels in a header)"
        )
    return token
