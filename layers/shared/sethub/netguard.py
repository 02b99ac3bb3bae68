"""The network guard: which URLs, hosts and IP addresses sethub may contact.

Callback and topic URLs are chosen by strangers, so every address the hub connects
to is vetted first (SSRF). Two checks use this module:

- ``vet_url`` at subscribe/publish time, for an immediate 4xx;
- ``resolve_public`` at connect time (``sethub.outbound``), which resolves the host
  once and returns the vetted addresses that the connection then uses, so a DNS
  answer that changes between the check and the connect (rebinding) changes nothing.

``getaddrinfo`` has no timeout of its own, so a lookup given a ``timeout`` runs on a
small shared pool of threads and the caller waits only that long (a slow name server
cannot stretch a request past its deadline). Concurrent lookups of the same name share
one thread, so one hostile name holds one thread, not one per caller. The resolver is
injectable (``Resolver``): the system's by default, a stub in tests.

An address is refused unless it is public unicast: loopback, private, link-local
(cloud metadata included), carrier-grade NAT, multicast, reserved, unspecified,
benchmarking and documentation ranges are all refused, in IPv4 and in IPv6, and
IPv6 forms that embed an IPv4 address (mapped, 6to4, NAT64) are judged by the
IPv4 address they carry. ``allow_private`` (``SETHUB_ALLOW_PRIVATE_CALLBACKS``)
lifts the address rules for local development; the scheme rules stay.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any, Final

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from sethub.errors import BlockedAddressError, OutboundError, OutboundTimeoutError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

AddrInfo = tuple[Any, ...]
"""One ``getaddrinfo`` answer: (family, type, proto, canonname, sockaddr)."""
Resolver = Callable[[str, int], Sequence[AddrInfo]]
"""Resolves (host, port) to ``getaddrinfo``-shaped answers; raises ``OSError`` when it cannot."""

LOOKUP_THREADS: Final = 64
"""Lookups in flight at once; one stalled name holds one thread until the OS resolver gives up."""
VET_RESOLVE_TIMEOUT_SECONDS: Final = 5.0
"""How long ``vet_url`` (a subscribe or publish request) waits for DNS before letting the URL through."""

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# Explicit tables rather than only ``ipaddress.is_global``, whose answers have changed
# between Python releases; ``is_global`` is still consulted as a final catch-all.
_FORBIDDEN_V4: Final[tuple[tuple[ipaddress.IPv4Network, str], ...]] = (
    (_V4("0.0.0.0/8"), "unspecified ('this network') address"),
    (_V4("10.0.0.0/8"), "private address"),
    (_V4("100.64.0.0/10"), "carrier-grade NAT address"),
    (_V4("127.0.0.0/8"), "loopback address"),
    (_V4("169.254.0.0/16"), "link-local address (cloud metadata lives here)"),
    (_V4("172.16.0.0/12"), "private address"),
    (_V4("192.0.0.0/24"), "IETF protocol assignment address"),
    (_V4("192.0.2.0/24"), "documentation address"),
    (_V4("192.88.99.0/24"), "6to4 relay anycast address"),
    (_V4("192.168.0.0/16"), "private address"),
    (_V4("198.18.0.0/15"), "benchmarking address"),
    (_V4("198.51.100.0/24"), "documentation address"),
    (_V4("203.0.113.0/24"), "documentation address"),
    (_V4("224.0.0.0/4"), "multicast address"),
    (_V4("240.0.0.0/4"), "reserved address"),
)

_FORBIDDEN_V6: Final[tuple[tuple[ipaddress.IPv6Network, str], ...]] = (
    (_V6("::/128"), "unspecified address"),
    (_V6("::1/128"), "loopback address"),
    (_V6("::/96"), "IPv4-compatible IPv6 address (deprecated)"),
    (_V6("64:ff9b:1::/48"), "local-use NAT64 address"),
    (_V6("100::/64"), "discard-only address"),
    (_V6("2001::/32"), "Teredo tunnel address"),
    (_V6("2001::/23"), "IETF protocol assignment address"),
    (_V6("2001:db8::/32"), "documentation address"),
    (_V6("3fff::/20"), "documentation address"),
    (_V6("5f00::/16"), "SRv6 segment identifier address"),
    (_V6("fc00::/7"), "unique local (private) address"),
    (_V6("fe80::/10"), "link-local address (cloud metadata lives here)"),
    (_V6("fec0::/10"), "site-local address (deprecated)"),
    (_V6("ff00::/8"), "multicast address"),
)

_GLOBAL_UNICAST_V6: Final = _V6("2000::/3")
_NAT64_V6: Final = _V6("64:ff9b::/96")


def forbidden_reason(address: IPAddress) -> str | None:
    """Why ``address`` may not be contacted, or None when it is public unicast."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = forbidden_reason(embedded)
            return None if reason is None else f"{reason} ({embedded}) inside an IPv6 address"
        for network, reason in _FORBIDDEN_V6:
            if address in network:
                return reason
        if address not in _GLOBAL_UNICAST_V6:
            return "reserved address"
    else:
        for network4, reason in _FORBIDDEN_V4:
            if address in network4:
                return reason
    if not address.is_global:
        return "non-public address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: mapped (::ffff:a.b.c.d), 6to4, NAT64."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64_V6:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _parse_ip(text: str) -> IPAddress | None:
    """A canonical IP literal (brackets and IPv6 zone allowed), else None."""
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def is_odd_ipv4_spelling(host: str) -> bool:
    """True for IPv4 spellings that resolvers accept but are not dotted quads.

    ``inet_aton`` (which getaddrinfo uses for numeric hosts) reads ``2130706433``,
    ``0x7f.1``, ``0177.0.0.1`` and ``127.1`` all as 127.0.0.1; such spellings are
    never needed by a real callback and are a classic filter bypass, so they are
    refused outright, whatever they decode to.
    """
    if _parse_ip(host) is not None:
        return False
    try:
        socket.inet_aton(host)
    except (OSError, ValueError):
        return False
    return True


def check_address(address: str, *, allow_private: bool) -> None:
    """Raise ``BlockedAddressError`` unless the IP literal ``address`` may be contacted."""
    if allow_private:
        return
    parsed = _parse_ip(address)
    if parsed is None:
        raise BlockedAddressError(f"not an IP address: {address!r}")
    reason = forbidden_reason(parsed)
    if reason is not None:
        raise BlockedAddressError(f"refused to contact {parsed}: {reason}")


def system_resolver(host: str, port: int) -> Sequence[AddrInfo]:
    """The operating system's resolver (looked up on each call, so tests can patch it)."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


class _Lookups:
    """A bounded pool of lookup threads; callers of the same (resolver, host, port) share one."""

    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        # Reentrant: a lookup done before add_done_callback runs _forget at once, in this
        # thread, which still holds the lock (a plain Lock deadlocks there).
        self._lock = threading.RLock()
        self._in_flight: dict[tuple[Resolver, str, int], Future[Sequence[AddrInfo]]] = {}

    def resolve(self, resolver: Resolver, host: str, port: int, timeout: float) -> Sequence[AddrInfo]:
        key = (resolver, host, port)
        with self._lock:
            future = self._in_flight.get(key)
            if future is None:
                if self._pool is None:
                    # Threads start only as lookups need them.
                    self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="sethub-dns")
                future = self._pool.submit(resolver, host, port)
                self._in_flight[key] = future
                future.add_done_callback(lambda done: self._forget(key, done))
        # A stalled lookup keeps its thread; the caller leaves when its time is up.
        return future.result(timeout=max(timeout, 0.0))

    def _forget(self, key: tuple[Resolver, str, int], done: Future[Sequence[AddrInfo]]) -> None:
        with self._lock:
            if self._in_flight.get(key) is done:
                del self._in_flight[key]


_LOOKUPS: Final = _Lookups(LOOKUP_THREADS)


def resolve_public(
    host: str,
    port: int,
    *,
    allow_private: bool,
    resolver: Resolver | None = None,
    timeout: float | None = None,
) -> list[str]:
    """Resolve ``host`` once and return the addresses to connect to, in resolver order.

    Every resolved address must pass (one bad answer refuses the host: an attacker
    controlling DNS could otherwise mix a public and a private answer). Raises
    ``BlockedAddressError`` for a refused host, ``OutboundError`` when it does not resolve
    and ``OutboundTimeoutError`` when no answer came within ``timeout`` seconds (None:
    wait in the calling thread for as long as the resolver takes).
    """
    bare = host.strip("[]").rstrip(".")
    if not bare:
        raise BlockedAddressError("URL has no host")
    if is_odd_ipv4_spelling(bare):
        raise BlockedAddressError(f"refused host {bare!r}: an unusual spelling of an IPv4 address")
    literal = _parse_ip(bare)
    if literal is not None:
        # A literal needs no DNS round trip; keep an IPv6 zone id (fe80::1%eth0) intact.
        check_address(bare, allow_private=allow_private)
        return [bare]
    lookup = system_resolver if resolver is None else resolver
    try:
        infos = lookup(bare, port) if timeout is None else _LOOKUPS.resolve(lookup, bare, port, timeout)
    except FutureTimeoutError:
        raise OutboundTimeoutError("resolving the host timed out") from None
    except (OSError, UnicodeError) as exc:
        raise OutboundError(f"cannot resolve host {bare!r}: {exc.__class__.__name__}") from None
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            check_address(address, allow_private=allow_private)
            addresses.append(address)
    if not addresses:
        raise OutboundError(f"cannot resolve host {bare!r}: no addresses")
    return addresses


def vet_url(
    url: str,
    *,
    allow_private: bool,
    allow_http: bool,
    resolver: Resolver | None = None,
    resolve_timeout: float = VET_RESOLVE_TIMEOUT_SECONDS,
) -> None:
    """Raise ``BlockedAddressError`` (one-line reason) unless ``url`` may be contacted.

    Checks the scheme (https, or http when ``allow_http``), that there is a host and no
    user info, and that every address the host resolves to is public. A host that does
    not resolve at all (or not within ``resolve_timeout``) is let through: DNS may be
    briefly down, the request is not dangerous, and the connect-time check refuses it
    anyway if it later resolves badly.
    """
    try:
        parsed = parse_url(url)
    except LocationParseError:
        raise BlockedAddressError("malformed URL") from None
    scheme = (parsed.scheme or "").lower()
    if scheme != "https" and not (allow_http and scheme == "http"):
        allowed = "https or http" if allow_http else "https"
        raise BlockedAddressError(f"URL scheme must be {allowed}, not {scheme or 'missing'!r}")
    if parsed.auth is not None:
        raise BlockedAddressError("URL must not contain user info (user:password@)")
    if not parsed.host:
        raise BlockedAddressError("URL has no host")
    port = parsed.port or (443 if scheme == "https" else 80)
    try:
        resolve_public(
            parsed.host, port, allow_private=allow_private, resolver=resolver, timeout=resolve_timeout
        )
    except OutboundError:
        return


__all__ = [
    "LOOKUP_THREADS",
    "VET_RESOLVE_TIMEOUT_SECONDS",
    "AddrInfo",
    "Resolver",
    "check_address",
    "forbidden_reason",
    "is_odd_ipv4_spelling",
    "resolve_public",
    "system_resolver",
    "vet_url",
]
