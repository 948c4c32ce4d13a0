"""Where a health check may connect: the rules against server-side request forgery.

Shared by the TCP checks (``activities.health_checks``) and the HTTP checks
(``activities.http_checks``), which import it and never each other. Enforced on the
worker because only the worker sees what a name resolves to (see docs/security.md):

- the worker connects only to addresses it has vetted after DNS resolution, and to the
  very address it vetted (``resolve_target``), so a name that resolves differently a
  moment later (DNS rebinding) cannot slip past;
- link-local and cloud metadata targets are refused unless the operator lists them in
  ``RECOVERY_HEALTH_CHECK_ALLOW`` (``TargetAllowList``).

A refusal is a non-retryable ``ApplicationError`` of type ``HealthCheckNotAllowed``. Beside
the rules sit the two small types both check modules speak: ``CheckFailed`` (a check's
negative answer) and ``CheckProgress`` (what it is doing, for timeouts and heartbeats).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass

from temporalio.exceptions import ApplicationError

ALLOWED_TARGETS_ENV = "RECOVERY_HEALTH_CHECK_ALLOW"
NOT_ALLOWED = "HealthCheckNotAllowed"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Refused unless allowed. The most specific first: the first match names the reason.
# Link-local covers 169.254.169.254, the metadata address of AWS, GCP, Azure, OCI,
# DigitalOcean and others, and 169.254.170.2 (ECS task credentials).
_REFUSED_NETWORKS: tuple[tuple[IPNetwork, str], ...] = (
    (ipaddress.ip_network("169.254.169.254/32"), "the cloud metadata address"),
    (ipaddress.ip_network("fd00:ec2::254/128"), "AWS's IPv6 metadata address"),
    (ipaddress.ip_network("fd00:c1::a9fe:a9fe/128"), "Oracle Cloud's IPv6 metadata address"),
    (ipaddress.ip_network("100.100.100.200/32"), "Alibaba Cloud's metadata address"),
    (ipaddress.ip_network("168.63.129.16/32"), "Azure's host (WireServer) address"),
    (ipaddress.ip_network("169.254.0.0/16"), "a link-local address"),
    (ipaddress.ip_network("fe80::/10"), "a link-local address"),
)
# Names of metadata services, refused before any DNS query is made.
_METADATA_NAMES = frozenset(
    {"metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class TargetAllowList:
    """Targets the operator allows although the rules refuse them.

    Parsed from ``RECOVERY_HEALTH_CHECK_ALLOW``: comma-separated entries, each a
    host name (matched exactly, case-insensitively), an IP address or a CIDR
    network, e.g. ``metadata.google.internal,169.254.170.2,fd00:ec2::/32``.
    """

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, raw: str) -> TargetAllowList:
        """Parse the variable's format.

        Raises:
            ValueError: naming the entry that is neither a name, an address nor a network.
        """
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in (part.strip() for part in raw.split(",")):
            if not entry:
                continue
            if re.fullmatch(r"[0-9.]+(/\d+)?|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(/\d+)?", entry):
                networks.append(_network(entry))
            elif _numeric_looking(entry):
                raise ValueError(
                    f"{ALLOWED_TARGETS_ENV}: {entry[:80]!r} reads as an IP address in a "
                    "shorthand form (hex or fewer than four parts): write the address in full "
                    "(e.g. 127.0.0.1) or a CIDR network"
                )
            elif re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9.])?", entry):
                hosts.add(_host_key(entry))
            else:
                raise ValueError(
                    f"{ALLOWED_TARGETS_ENV}: {entry[:80]!r} is not a host name, an IP "
                    "address or a CIDR network (entries are separated by commas)"
                )
        return cls(hosts=frozenset(hosts), networks=tuple(networks))

    @classmethod
    def from_env(cls) -> TargetAllowList:
        """Return the allow-list in this process's ``RECOVERY_HEALTH_CHECK_ALLOW``."""
        from activities.settings import RecoverySettings  # it imports this module

        targets: TargetAllowList = RecoverySettings.read("health_check_allow")
        return targets

    def allows_host(self, host: str) -> bool:
        """Return True when ``host`` is listed by name."""
        return _host_key(host) in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        """Return True when ``address`` lies in a listed address or network."""
        return any(address in network for network in self.networks)


def _numeric_looking(entry: str) -> bool:
    """Return True for a name a URL parser would read as an IPv4 address (``0x7f.1``).

    WHATWG URL parsing, and so browsers and some clients, read a host whose last label
    is a number (decimal, octal or 0x hex) as an address: listing one by name would
    allow an address the operator never wrote down.
    """
    last = _host_key(entry).rsplit(".", 1)[-1]
    return re.fullmatch(r"[0-9]+|0x[0-9a-f]*", last) is not None


def _network(entry: str) -> IPNetwork:
    """Return the network an allow-list entry names (an address is a one-address network).

    Strictly: ``10.1.2.3/8`` is refused (host bits set) rather than read as ``10.0.0.0/8``,
    which would allow far more than the operator probably meant.
    """
    try:
        return ipaddress.ip_network(entry, strict=True)
    except ValueError as err:
        raise ValueError(f"{ALLOWED_TARGETS_ENV}: {entry[:80]!r}: {err}") from None


def _host_key(host: str) -> str:
    """Return a host name as compared: lower case, without the root's trailing dot."""
    return host.rstrip(".").lower()


def _plain(address: IPAddress) -> IPAddress:
    """Return the IPv4 address an IPv6 one stands for (mapped or NAT64), else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def refusal_reason(address: IPAddress) -> str | None:
    """Return why the rules refuse ``address`` (before any allow-list), or None."""
    plain = _plain(address)
    for network, reason in _REFUSED_NETWORKS:
        if plain.version == network.version and plain in network:
            return reason
    return None


class CheckFailed(Exception):
    """The check's answer: failed, with its cause as the message."""


def not_allowed(host: str, why: str) -> ApplicationError:
    """Return the refusal of a target, saying how an operator allows it."""
    return ApplicationError(
        f"health check target {host!r} refused: {why}; an operator who means it lists it in "
        f"the worker's {ALLOWED_TARGETS_ENV} (comma-separated host names, addresses, CIDRs)",
        type=NOT_ALLOWED,
        non_retryable=True,
    )


async def resolve_target(host: str, port: int, allow: TargetAllowList) -> list[str]:
    """Return the addresses to try, in order, once the name and all of them are vetted.

    The caller connects to these addresses itself, so a name that resolves
    differently a moment later (DNS rebinding) cannot slip past the check.

    Raises:
        ApplicationError: the target is refused (type ``HealthCheckNotAllowed``).
        CheckFailed: the name did not resolve.
    """
    by_name = allow.allows_host(host)
    if _host_key(host) in _METADATA_NAMES and not by_name:
        raise not_allowed(host, "it is a cloud metadata service")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )
    except socket.gaierror as err:
        raise CheckFailed(f"DNS name {host!r} not resolved ({err.strerror})") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise CheckFailed(f"DNS name {host!r} not resolved (no address)")
    if not by_name:  # a name the operator listed may resolve to anything
        for text in addresses:
            vet_address(host, text, allow)
    return addresses


def vet_address(host: str, text: str, allow: TargetAllowList) -> None:
    """Raise the refusal of ``host`` if its address ``text`` is refused and not allowed."""
    address = ipaddress.ip_address(text.split("%", 1)[0])  # without an IPv6 scope
    reason = refusal_reason(address)
    if reason and not (allow.allows_address(address) or allow.allows_address(_plain(address))):
        shown = "it is" if text == host else f"it resolves to {text},"
        raise not_allowed(host, f"{shown} {reason}")


class CheckProgress:
    """What a running check is doing: named in a timeout's message and in heartbeats."""

    def __init__(self) -> None:
        self.phase = "starting"
