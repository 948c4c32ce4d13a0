"""The ``run_health_check`` activity: HTTP, TCP and allow-listed callables.

A ``hosted`` check never runs here: it belongs to the process that scheduled the
recovery, whose own worker serves ``run_hosted_health_check`` on its task queue.

Every check is bounded by its own ``timeout_ms``: a hung service makes the check
fail, it never hangs the recovery. A failing check is returned as an outcome, not
raised, so Temporal does not retry what is really an answer; its detail names the
cause (timed out, connection reset, DNS name not resolved, too many redirects, body
too large, …). While a check runs the activity heartbeats, so a worker that dies
mid-check is noticed at the workflow's heartbeat timeout, not its full timeout.

Trust rules, enforced here because only the worker sees its own environment and
what a name resolves to (see docs/security.md):

- the worker connects only to addresses it has vetted after DNS resolution, and to
  the very address it vetted: link-local and cloud metadata targets are refused
  unless the operator lists them in ``RECOVERY_HEALTH_CHECK_ALLOW``;
- HTTP redirects are followed at most ``MAX_REDIRECTS`` times, each hop vetted
  again; headers read from the environment go to the check's own origin only;
- at most ``MAX_BODY_BYTES`` of an answer are read, and none of it is reported;
- a callable runs only from a module listed in ``RECOVERY_HEALTH_CHECK_MODULES``,
  and only a function defined in that module.

A refusal is a non-retryable ``ApplicationError`` (type ``HealthCheckNotAllowed``,
or ``HealthCheckSecretMissing`` for an unset variable): it fails the attempt with
its message, and the recovery goes on to its next attempt.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import ipaddress
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.health_check_specs import (
    CallableHealthCheck,
    HealthCheckInput,
    HealthCheckOutcome,
    HostedHealthCheck,
    HttpHealthCheck,
    TcpHealthCheck,
    clip_detail,
    hide_url_credentials,
    url_has_credentials,
)
from activities.redaction import redact

ALLOWED_MODULES_ENV = "RECOVERY_HEALTH_CHECK_MODULES"
ALLOWED_TARGETS_ENV = "RECOVERY_HEALTH_CHECK_ALLOW"

# How often a running check heartbeats. The workflow's heartbeat timeout for
# ``run_health_check`` must be a few of these (5 s): then a dead worker is noticed
# within about 5 s and the check retried on another.
HEARTBEAT_INTERVAL_S = 1.0
# A health answer is small; reading more than this is a fault, not a health check.
MAX_BODY_BYTES = 1024 * 1024
MAX_REDIRECTS = 5

NOT_ALLOWED = "HealthCheckNotAllowed"
SECRET_MISSING = "HealthCheckSecretMissing"

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

T = TypeVar("T")


def allowed_modules_from_env() -> frozenset[str]:
    """Return the comma-separated ``RECOVERY_HEALTH_CHECK_MODULES`` as a set."""
    from activities.settings import RecoverySettings  # it imports this module

    modules: frozenset[str] = RecoverySettings.read("health_check_modules")
    return modules


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


class _CheckFailed(Exception):
    """The check's answer: failed, with its cause as the message."""


def _not_allowed(host: str, why: str) -> ApplicationError:
    """Return the refusal of a target, saying how an operator allows it."""
    return ApplicationError(
        f"health check target {host!r} refused: {why}; an operator who means it lists it in "
        f"the worker's {ALLOWED_TARGETS_ENV} (comma-separated host names, addresses, CIDRs)",
        type=NOT_ALLOWED,
        non_retryable=True,
    )


async def _resolve_target(host: str, port: int, allow: TargetAllowList) -> list[str]:
    """Return the addresses to try, in order, once the name and all of them are vetted.

    The caller connects to these addresses itself, so a name that resolves
    differently a moment later (DNS rebinding) cannot slip past the check.

    Raises:
        ApplicationError: the target is refused (type ``HealthCheckNotAllowed``).
        _CheckFailed: the name did not resolve.
    """
    by_name = allow.allows_host(host)
    if _host_key(host) in _METADATA_NAMES and not by_name:
        raise _not_allowed(host, "it is a cloud metadata service")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )
    except socket.gaierror as err:
        raise _CheckFailed(f"DNS name {host!r} not resolved ({err.strerror})") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise _CheckFailed(f"DNS name {host!r} not resolved (no address)")
    if not by_name:  # a name the operator listed may resolve to anything
        for text in addresses:
            _vet_address(host, text, allow)
    return addresses


def _vet_address(host: str, text: str, allow: TargetAllowList) -> None:
    """Raise the refusal of ``host`` if its address ``text`` is refused and not allowed."""
    address = ipaddress.ip_address(text.split("%", 1)[0])  # without an IPv6 scope
    reason = refusal_reason(address)
    if reason and not (allow.allows_address(address) or allow.allows_address(_plain(address))):
        shown = "it is" if text == host else f"it resolves to {text},"
        raise _not_allowed(host, f"{shown} {reason}")


class _Progress:
    """What a running check is doing: named in a timeout's message and in heartbeats."""

    def __init__(self) -> None:
        self.phase = "starting"


class HealthCheckActivities:
    """Health-check activity bound to the worker's allow-lists.

    Args:
        allowed_modules: Modules whose functions may be ``callable`` checks.
        allowed_targets: Targets allowed although refused by the rules; by default
            this process's ``RECOVERY_HEALTH_CHECK_ALLOW`` (a bad value raises
            ``ValueError`` here, so the worker stops before it polls).
    """

    def __init__(
        self,
        allowed_modules: Iterable[str] = (),
        allowed_targets: TargetAllowList | None = None,
    ) -> None:
        self._allowed_modules = frozenset(allowed_modules)
        self._allowed_targets = (
            allowed_targets if allowed_targets is not None else TargetAllowList.from_env()
        )

    @activity.defn(name="run_health_check")
    async def run_health_check(self, input: HealthCheckInput) -> HealthCheckOutcome:
        """Run one check and report whether it passed.

        What it reports, and any error it fails with, is redacted (``activities.redaction``):
        it goes into the history, the ``history`` query, ``last_error`` and the log.
        """
        try:
            return await self._run_health_check(input)
        except Exception as err:
            redacted = _redacted_error(err)
            if redacted is None:
                raise
            raise redacted from None

    async def _run_health_check(self, input: HealthCheckInput) -> HealthCheckOutcome:
        check = input.check
        if isinstance(check, HostedHealthCheck):
            raise ApplicationError(
                f"hosted health check {check.function!r} refused: it runs only in its host "
                f"{check.host!r}, on task queue {check.task_queue!r}, not on a recovery worker",
                type="HealthCheckNotHosted",
                non_retryable=True,
            )
        progress = _Progress()
        started = time.monotonic()
        try:
            async with asyncio.timeout(check.timeout_ms / 1000):
                passed, detail = await _heartbeating(self._run(check, progress), progress)
        except TimeoutError:
            passed, detail = False, (
                f"{check.kind} check timed out after {check.timeout_ms} ms "
                f"({progress.phase}: {check.target})"
            )
        elapsed = int((time.monotonic() - started) * 1000)
        detail = clip_detail(redact(detail))
        activity.logger.info("health check for %r: %s (%s)", input.service_name, passed, detail)
        return HealthCheckOutcome(passed=passed, detail=detail, duration_ms=elapsed)

    async def _run(
        self, check: HttpHealthCheck | TcpHealthCheck | CallableHealthCheck, progress: _Progress
    ) -> tuple[bool, str]:
        """Dispatch on the check's kind."""
        if isinstance(check, HttpHealthCheck):
            # httpx (with the click, rich and pygments of its CLI) only once a check needs it.
            from activities.http_checks import http_check

            return await http_check(check, self._allowed_targets, progress)
        if isinstance(check, TcpHealthCheck):
            return await _tcp(check, self._allowed_targets, progress)
        return await _callable(check, self._allowed_modules, progress)


async def _heartbeating(work: Awaitable[T], progress: _Progress) -> T:
    """Await ``work`` while heartbeating every ``HEARTBEAT_INTERVAL_S`` with its phase."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)
            activity.heartbeat(progress.phase)

    beating = asyncio.create_task(beat())
    try:
        return await work
    finally:
        beating.cancel()


async def _callable(
    check: CallableHealthCheck, allowed_modules: frozenset[str], progress: _Progress
) -> tuple[bool, str]:
    """Call an allow-listed module's function; its result, or its exception, is the answer."""
    function = _load_callable(check, allowed_modules)
    progress.phase = f"waiting for {check.ref}"
    try:
        if inspect.iscoroutinefunction(function):
            result = await function()
        else:
            result = await _in_own_thread(function, check.ref)
    except _TooManyHungChecks as err:
        return False, str(err)
    except Exception as err:  # the check's own failure is its answer
        return False, f"{check.ref} raised {type(err).__name__}: {clip_detail(redact(str(err)))}"
    return bool(result), f"{check.ref} returned {clip_detail(redact(repr(result)))}"


def _redacted_error(err: Exception) -> ApplicationError | None:
    """Return ``err`` as an error whose message and causes hold no secret; None if it is so.

    Temporal records an activity's error, its causes included, in the history.
    """
    chain: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__
    texts = [e.message if isinstance(e, ApplicationError) else str(e) for e in chain]
    if all(redact(text) == text for text in texts):
        return None
    message = redact(texts[0])
    if isinstance(err, ApplicationError):
        return ApplicationError(
            message,
            type=err.type,
            non_retryable=err.non_retryable,
            next_retry_delay=err.next_retry_delay,
        )
    return ApplicationError(message, type=type(err).__name__)


class _TooManyHungChecks(Exception):
    """More synchronous checks are still running past their timeout than a worker allows."""


# Synchronous checks still running (hung ones outlive their timeout: a thread cannot be
# stopped). Past this many, new ones fail at once rather than pile up threads.
MAX_CHECK_THREADS = 64
_check_threads = threading.BoundedSemaphore(MAX_CHECK_THREADS)


async def _in_own_thread(function: Callable[[], Any], ref: str) -> Any:
    """Run a synchronous check on a daemon thread of its own and await its answer.

    Not ``asyncio.to_thread``: the default executor's few threads also serve the breaker
    store, so a check that hangs for ever held one of them for ever; enough of them
    stalled every recovery of the worker, and its shutdown waited for them. A daemon
    thread of its own costs only the attempt it belongs to (the timeout ends the wait)
    and never blocks the worker's exit.
    """
    if not _check_threads.acquire(blocking=False):
        raise _TooManyHungChecks(
            f"{ref} not run: {MAX_CHECK_THREADS} synchronous checks of this worker are "
            "still running past their timeouts (hung); restart the worker to free them"
        )
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[Any] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not answer.done():  # the wait may have timed out meanwhile
            outcome()

    def run() -> None:
        try:
            result = function()
        except BaseException as err:  # the check's own failure is its answer
            error = err
            _tell(loop, lambda: settle(lambda: answer.set_exception(error)))
        else:
            _tell(loop, lambda: settle(lambda: answer.set_result(result)))
        finally:
            _check_threads.release()

    threading.Thread(target=run, name=f"health check {ref}", daemon=True).start()
    return await answer


def _tell(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    """Hand ``callback`` to the event loop, unless the loop has closed (the worker exited)."""
    try:
        loop.call_soon_threadsafe(callback)
    except RuntimeError:
        pass


def _load_callable(
    check: CallableHealthCheck, allowed_modules: frozenset[str]
) -> Callable[[], Any]:
    """Return the function ``check.ref`` names, if the allow-list lets it run.

    Only a function defined in the listed module: a name it merely imported (say
    ``os.system``) would let an input call code nobody allowed.
    """
    if check.module not in allowed_modules:
        raise ApplicationError(
            f"callable health check {check.ref!r} refused: module {check.module!r} is not "
            f"in the worker's {ALLOWED_MODULES_ENV}",
            type=NOT_ALLOWED,
            non_retryable=True,
        )
    function_name = check.ref.split(":", 1)[1]
    try:
        function = getattr(importlib.import_module(check.module), function_name)
    except (ImportError, AttributeError) as err:
        raise ApplicationError(
            f"callable health check {check.ref!r} cannot be loaded: {err}",
            type="HealthCheckNotFound",
            non_retryable=True,
        ) from err
    if not inspect.isfunction(function) or function.__module__ != check.module:
        raise ApplicationError(
            f"callable health check {check.ref!r} refused: {function_name!r} is not a "
            f"function defined in {check.module!r}",
            type=NOT_ALLOWED,
            non_retryable=True,
        )
    return function


async def _tcp(
    check: TcpHealthCheck, allow: TargetAllowList, progress: _Progress
) -> tuple[bool, str]:
    """Connect to a vetted address of ``host:port``; pass when one accepts."""
    where = f"TCP {check.host}:{check.port}"
    progress.phase = f"resolving {check.host}"
    try:
        addresses = await _resolve_target(check.host, check.port, allow)
    except _CheckFailed as failed:
        return False, f"{where}: {failed}"
    progress.phase = "connecting"
    error: OSError | None = None
    for address in addresses:
        try:
            _, writer = await asyncio.open_connection(address, check.port)
        except OSError as err:
            error = error or err  # the first address's error is the one to report
            continue
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return True, f"{where} accepted a connection"
    assert error is not None  # resolve_target returns at least one address
    return False, f"{where} refused: {error.strerror or error}"
