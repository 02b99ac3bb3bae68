"""``GuardedHttp``: the only way sethub makes HTTP requests to URLs that strangers chose.

Deliveries, verification of intent and topic fetches all go through it. Built on
urllib3 directly (requests' own transport, without requests' per-call overhead),
since this is the hub's hot path:

- every new connection resolves the host once, vets every address with
  ``sethub.netguard`` and connects to a vetted address, while the Host header, the
  TLS server name and the certificate check keep the original hostname: no DNS
  rebinding window between the check and the connect;
- redirects are never followed (a 3xx is returned as a response) and nothing is
  retried here (retries are the caller's policy);
- every request has one total deadline, ``timeout`` seconds from its start: resolving
  the host (on a bounded pool of lookup threads, ``sethub.netguard``) and connecting get
  what is left of it as their timeouts, and so does the TLS handshake; sending the
  request and reading the whole response are cut off at it by one watchdog thread,
  which shuts the request's socket down. So neither a slow name server nor a server
  dripping bytes (or reading the body a byte at a time) can hold a delivery thread for
  longer; the body is read up to ``max_response_bytes`` and never decompressed;
- connections are pooled and kept alive per (scheme, host, port); a connection whose
  response was not read to the end is closed rather than returned dirty to the pool.

Why a watchdog rather than socket timeouts: a socket with a timeout polls before every
send and receive, so each of them hands the GIL over twice; with 32 delivery threads
those handoffs cost about a fifth more CPU per delivery than bare urllib3 (``make bench``,
fan-out rows). Sockets here are blocking once connected, as urllib3's are by default.

Errors: ``BlockedAddressError`` when the guard refuses the URL or an address (nothing
is sent), ``OutboundError`` when the request cannot complete. Messages are one line
and name no URL path or query (callback URLs may carry tokens).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any, Final

from urllib3 import HTTPConnectionPool, HTTPResponse, PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationParseError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util.connection import create_connection

from sethub.errors import BlockedAddressError, OutboundError, OutboundTimeoutError
from sethub.netguard import Resolver, resolve_public
from sethub.settings import Settings

DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 1024
"""Bytes read from a subscriber's response; the rest is discarded."""
DEFAULT_POOL_MAXSIZE: Final = 32
DEFAULT_NUM_POOLS: Final = 128
"""Distinct (scheme, host, port) pools kept; bounded because each idle connection is a file descriptor."""
_READ_CHUNK: Final = 16 * 1024


class _InFlight:
    """One request's deadline and the socket it is using, as the watchdog sees them."""

    __slots__ = ("cut_off", "deadline", "over", "reading", "sock")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.sock: socket.socket | None = None
        self.reading = False
        """The request was sent and its response is being read (names a cut-off)."""
        self.over = False
        """The request is over: the watchdog leaves it alone."""
        self.cut_off = False
        """The watchdog shut its socket at the deadline."""

    def use(self, sock: socket.socket) -> None:
        """The request goes on over ``sock``: shut it at once if the deadline already passed."""
        self.sock = sock
        # Either the watchdog sees the socket, or this sees its cut-off (no lock: the GIL
        # orders the two attribute writes and reads).
        if self.cut_off:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    """Wake whatever blocks on ``sock`` (a read sees the end, a send an error); the owner closes it."""
    # OSError: already closed or never connected, nothing to wake. The plain socket's
    # shutdown, also for a TLS socket: it acts on the descriptor and leaves the TLS object,
    # which the blocked thread is still using, alone.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """Cuts off every request still running at its deadline, on one daemon thread per process.

    Requests are kept in a heap by deadline; one that is over is dropped from the top as
    soon as it gets there, so the thread wakes about once per deadline that passes with a
    request still in flight, not once per request.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int, _InFlight]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, request: _InFlight) -> None:
        with self._lock:
            heapq.heappush(self._heap, (request.deadline, next(self._order), request))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sethub-outbound-deadlines", daemon=True
                )
                self._thread.start()
            if self._heap[0][2] is request:
                self._lock.notify()  # an earlier deadline than the one the thread waits for

    def release(self, request: _InFlight) -> bool:
        """End the watch of ``request``; whether it was cut off (the same answer every call)."""
        with self._lock:
            request.over = True
            heap = self._heap
            while heap and heap[0][2].over:
                heapq.heappop(heap)
            return request.cut_off

    def _run(self) -> None:
        heap = self._heap
        with self._lock:
            while True:
                while heap and heap[0][2].over:
                    heapq.heappop(heap)
                if not heap:
                    self._lock.wait()
                    continue
                left = heap[0][0] - time.monotonic()
                if left > 0:
                    self._lock.wait(left)
                    continue
                _, _, request = heapq.heappop(heap)
                request.cut_off = True
                if request.sock is not None:
                    _shut(request.sock)


_WATCHDOG: Final = _Watchdog()
_IN_FLIGHT: ContextVar[_InFlight] = ContextVar("sethub_outbound_request")
"""The current thread's request: set by ``GuardedHttp.request`` around the whole urllib3 call;
the connections, which urllib3 builds and pools, read it. Only ``GuardedHttp.request`` uses
these connections, so it is always set when they run."""


@contextlib.contextmanager
def _deadline(deadline: float) -> Iterator[_InFlight]:
    """The request in flight on this thread until ``deadline``, watched by the watchdog."""
    request = _InFlight(deadline)
    token = _IN_FLIGHT.set(request)
    _WATCHDOG.watch(request)
    try:
        yield request
    finally:
        _WATCHDOG.release(request)
        _IN_FLIGHT.reset(token)


def _remaining() -> float:
    """Seconds left of the current request; TimeoutError once they are spent."""
    remaining = _IN_FLIGHT.get().deadline - time.monotonic()
    if remaining <= 0:
        # No text of its own: what wraps it (_describe) names the step that ran out of time.
        raise TimeoutError
    return remaining


@dataclass(frozen=True, slots=True)
class OutboundResponse:
    """What came back: status, headers (case-insensitive ``get``), at most the capped body."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    elapsed: float
    """Seconds from the start of the request to the end of reading the body."""


def _connect_vetted(conn: HTTPConnection, allow_private: bool, resolver: Resolver | None) -> socket.socket:
    """Resolve and vet the host once, then connect to a vetted address (never re-resolve).

    Resolution and each connect attempt get what is left of the request's deadline, and
    the connected socket keeps only what is left after that for the TLS handshake (which
    CPython bounds as a whole by the socket's timeout); ``_GuardedHTTPConnection.connect``
    then hands it to the watchdog.
    """
    try:
        addresses = resolve_public(
            conn._dns_host, conn.port, allow_private=allow_private, resolver=resolver, timeout=_remaining()
        )
        refusals: list[OSError] = []
        for address in addresses:
            try:
                # sethub sets no source address; the socket options are urllib3's (TCP_NODELAY).
                sock = create_connection(
                    (address, conn.port), _remaining(), socket_options=conn.socket_options
                )
            except TimeoutError:
                raise
            except OSError as exc:
                refusals.append(exc)
                continue
            try:
                sock.settimeout(_remaining())
            except TimeoutError:
                sock.close()
                raise
            return sock
    except TimeoutError as exc:
        # urllib3's type, not a socket timeout: urllib3 reports those while connecting for
        # TLS as read timeouts. No text: _describe names it by the request's timeout.
        raise ConnectTimeoutError from exc
    # urllib3 closes the connection for any error; ours passes through it as it is.
    raise OutboundError(f"connection failed: {_os_reason(refusals[-1])}")


class _GuardedHTTPConnection(HTTPConnection):
    """Connects only to an address the guard vetted, resolved afresh for each connection."""

    # urllib3's pools pass everything by keyword, the guard's settings from _new_pool.
    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        allow_private: bool,
        resolver: Resolver | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(host, port, **kwargs)
        self._allow_private = allow_private
        self._resolver = resolver

    def _new_conn(self) -> socket.socket:
        return _connect_vetted(self, self._allow_private, self._resolver)

    def connect(self) -> None:
        super().connect()  # for HTTPS, with the TLS handshake under the socket's timeout
        # Blocking from here on, the watchdog bounding the request (the TLS socket is a new
        # object: the watchdog could not have shut the handshake's through the plain one).
        self.sock.settimeout(None)
        _IN_FLIGHT.get().use(self.sock)

    def send(self, data: Any) -> None:
        # A pooled connection serves one request after another: the watchdog must shut the
        # socket of this one if its deadline passes (a new connection was handed over in connect).
        if self.sock is not None:
            request = _IN_FLIGHT.get()
            if request.sock is not self.sock:
                request.use(self.sock)
        super().send(data)

    def getresponse(self) -> Any:
        _IN_FLIGHT.get().reading = True
        return super().getresponse()


class _GuardedHTTPSConnection(_GuardedHTTPConnection, HTTPSConnection):
    # HTTPSConnection.connect wraps the socket with server_hostname = self.host (the
    # original name), so SNI and the certificate check are unaffected by connecting by IP.
    pass


class _GuardedPoolManager(PoolManager):
    """A PoolManager whose pools make only guarded connections."""

    def __init__(self, *, allow_private: bool, resolver: Resolver | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._allow_private = allow_private
        self._resolver = resolver

    def _new_pool(
        self, scheme: str, host: str, port: int, request_context: dict[str, Any] | None = None
    ) -> HTTPConnectionPool:
        pool = super()._new_pool(scheme, host, port, request_context)
        # Per-pool rather than via PoolManager kwargs: unknown kwargs break urllib3's pool key.
        pool.ConnectionCls = _GuardedHTTPSConnection if scheme == "https" else _GuardedHTTPConnection
        pool.conn_kw["allow_private"] = self._allow_private
        pool.conn_kw["resolver"] = self._resolver
        return pool


class GuardedHttp:
    """Thread-safe pooled HTTP client that only talks to vetted addresses."""

    def __init__(
        self,
        *,
        allow_private: bool,
        allow_http: bool,
        timeout: float,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        pool_maxsize: int = DEFAULT_POOL_MAXSIZE,
        num_pools: int = DEFAULT_NUM_POOLS,
        ca_certs: str | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        """``timeout``: seconds for a whole request, from resolving the host to the last byte
        of the response; ``resolver``: how host names are resolved (the system's by default)."""
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if max_response_bytes < 0:
            raise ValueError("max_response_bytes must not be negative")
        self.allow_private = allow_private
        self.allow_http = allow_http
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        pool_kw: dict[str, Any] = {}
        if ca_certs is not None:
            pool_kw["ca_certs"] = ca_certs
        self._manager = _GuardedPoolManager(
            allow_private=allow_private,
            resolver=resolver,
            num_pools=num_pools,
            maxsize=pool_maxsize,
            **pool_kw,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        timeout: float | None = None,
    ) -> GuardedHttp:
        """The guard and limits of ``settings``; ``timeout`` defaults to the delivery timeout."""
        return cls(
            allow_private=settings.allow_private_callbacks,
            allow_http=settings.allow_http_callbacks,
            timeout=settings.delivery_timeout_seconds if timeout is None else timeout,
            max_response_bytes=max_response_bytes,
            pool_maxsize=settings.delivery_concurrency,
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> OutboundResponse:
        """Send one request and read at most ``max_response_bytes`` of the response.

        The whole of it, from resolving the host to the last byte read, takes at most
        ``timeout`` seconds (plus the time to notice and close); past that it raises
        ``OutboundTimeoutError`` and the connection is closed.
        """
        self._check_scheme(url)
        started = time.monotonic()
        with _deadline(started + self.timeout) as in_flight:
            return self._request(
                method, url, headers=headers, body=body, started=started, in_flight=in_flight
            )

    def _request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None,
        body: bytes | None,
        started: float,
        in_flight: _InFlight,
    ) -> OutboundResponse:
        try:
            response: HTTPResponse = self._manager.urlopen(  # type: ignore[assignment]
                method,
                url,
                body=body,
                headers=headers,
                redirect=False,
                retries=False,
                # No urllib3 timeout: the watchdog bounds the request (module docstring).
                preload_content=False,
            )
        except LocationParseError:
            raise BlockedAddressError("malformed URL") from None
        except (HTTPError, HTTPException, OSError) as exc:
            cut_off = _WATCHDOG.release(in_flight)
            raise _failure(exc, self.timeout, cut_off=cut_off, reading=in_flight.reading) from None
        try:
            content = self._read_capped(response)
            if _WATCHDOG.release(in_flight):
                # Cut off in the body: one that ends with the connection would look whole.
                raise TimeoutError
        except (HTTPError, HTTPException, OSError) as exc:
            response.close()
            response.release_conn()
            raise _failure(exc, self.timeout, cut_off=_WATCHDOG.release(in_flight), reading=True) from None
        except BaseException:
            response.close()
            response.release_conn()
            raise
        response.release_conn()
        return OutboundResponse(
            status=response.status,
            headers=response.headers,
            body=content,
            elapsed=time.monotonic() - started,
        )

    def _check_scheme(self, url: str) -> None:
        # A prefix test, not a URL parse: this runs on every delivery.
        head = url[:8].lower()
        if head == "https://" or (self.allow_http and head.startswith("http://")):
            return
        allowed = "https or http" if self.allow_http else "https"
        scheme = url.partition(":")[0][:16] if ":" in url else "missing"
        raise BlockedAddressError(f"URL scheme must be {allowed}, not {scheme!r}")

    def _read_capped(self, response: HTTPResponse) -> bytes:
        """Read up to the cap; close a partly read connection (the caller releases it)."""
        cap = self.max_response_bytes
        chunks: list[bytes] = []
        size = 0
        while size < cap:
            chunk = response.read1(min(cap - size, _READ_CHUNK), decode_content=False)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if not response.closed:
            # More than the cap is pending (or the cap is 0): draining a large body would
            # cost more than a new connection, and a dirty connection must not be reused.
            response.close()
        # Joining one chunk returns it as it is (no copy).
        return b"".join(chunks)

    def clear(self) -> None:
        """Close every pooled connection."""
        self._manager.clear()


def _os_reason(exc: OSError) -> str:
    return exc.strerror.lower() if exc.strerror else exc.__class__.__name__


def _failure(exc: BaseException, timeout: float, *, cut_off: bool, reading: bool) -> OutboundError:
    """The sethub error for an urllib3/http.client/socket failure: one line, no URL.

    ``cut_off``: the watchdog shut the socket at the deadline, so whatever broke (a read
    seeing the end, a send the reset) broke because time ran out; ``reading``: the request
    was sent and its response was being read then.
    """
    if cut_off and not isinstance(exc, ConnectTimeoutError):
        return OutboundTimeoutError(
            f"read timed out after {timeout:g} s" if reading else f"timed out after {timeout:g} s"
        )
    timed_out = isinstance(exc, ReadTimeoutError | TimeoutError | ConnectTimeoutError)
    if isinstance(exc, ProtocolError) and len(exc.args) > 1 and isinstance(exc.args[1], TimeoutError):
        timed_out = True
    reason = _describe(exc, timeout)
    return OutboundTimeoutError(reason) if timed_out else OutboundError(reason)


def _describe(exc: BaseException, timeout: float) -> str:
    """A one-line, URL-free reason for an urllib3/http.client/socket failure."""
    if isinstance(exc, ConnectTimeoutError):
        reason = f"connect timed out after {timeout:g} s"
    elif isinstance(exc, ReadTimeoutError | TimeoutError):
        reason = f"read timed out after {timeout:g} s"
    elif isinstance(exc, SSLError):
        reason = f"TLS failure: {exc.args[0] if exc.args else 'handshake failed'}"
    elif isinstance(exc, ProtocolError):
        inner = exc.args[1] if len(exc.args) > 1 else None
        if isinstance(inner, TimeoutError):
            # Raised while connecting (TLS) or sending: the same deadline ran out.
            reason = f"timed out after {timeout:g} s"
        else:
            name = inner.__class__.__name__ if inner is not None else "protocol error"
            reason = f"connection broken: {name}"
    elif isinstance(exc, OSError):
        reason = f"network error: {_os_reason(exc)}"
    else:
        reason = f"request failed: {exc.__class__.__name__}"
    return " ".join(reason.split())[:300]


__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "GuardedHttp", "OutboundResponse"]
