"""What a subscriber reads when its callback URL is refused, and which port the guard vets.

The reasons end up in the hub's 400 answer to ``hub.callback``, so they are asserted word
for word. The resolver is a stub: it records what it was asked and answers a public address.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from sethub.errors import BlockedAddressError
from sethub.netguard import AddrInfo, check_address, vet_url

PUBLIC = "93.184.215.14"


class Recording:
    """A resolver that answers ``PUBLIC`` and remembers each (host, port) it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> Sequence[AddrInfo]:
        self.asked.append((host, port))
        return [(2, 1, 6, "", (PUBLIC, port))]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://a b.example:x/", "malformed URL"),
        ("rp.example/hook", "URL scheme must be https, not 'missing'"),
        ("ftp://rp.example/hook", "URL scheme must be https, not 'ftp'"),
        ("http://rp.example/hook", "URL scheme must be https, not 'http'"),
        ("https://user:pw@rp.example/hook", "URL must not contain user info (user:password@)"),
        ("https:///hook", "URL has no host"),
    ],
)
def test_a_refused_callback_says_why(url: str, reason: str) -> None:
    with pytest.raises(BlockedAddressError) as refused:
        vet_url(url, allow_private=False, allow_http=False, resolver=Recording())
    assert str(refused.value) == reason


def test_with_http_allowed_the_reason_names_both_schemes() -> None:
    with pytest.raises(BlockedAddressError) as refused:
        vet_url("gopher://rp.example/", allow_private=False, allow_http=True, resolver=Recording())
    assert str(refused.value) == "URL scheme must be https or http, not 'gopher'"


@pytest.mark.parametrize(
    ("url", "allow_http", "port"),
    [
        ("https://rp.example/hook", False, 443),
        ("http://rp.example/hook", True, 80),
        ("https://rp.example:8443/hook", False, 8443),
        ("http://rp.example:8080/hook", True, 8080),
    ],
)
def test_the_guard_resolves_the_port_the_callback_will_use(url: str, allow_http: bool, port: int) -> None:
    resolver = Recording()

    vet_url(url, allow_private=False, allow_http=allow_http, resolver=resolver)

    assert resolver.asked == [("rp.example", port)]


def test_a_stalled_name_server_does_not_hold_a_subscribe_request() -> None:
    release = threading.Event()

    def stalled(host: str, port: int) -> Sequence[AddrInfo]:
        release.wait(30)
        return [(2, 1, 6, "", (PUBLIC, port))]

    done = threading.Event()

    def subscribe() -> None:
        vet_url(
            "https://stalled.example/",
            allow_private=False,
            allow_http=False,
            resolver=stalled,
            resolve_timeout=0.2,
        )
        done.set()

    worker = threading.Thread(target=subscribe, daemon=True)
    worker.start()
    try:
        # Let through after its resolve timeout, long before the name server answers.
        assert done.wait(20)
    finally:
        release.set()


def test_an_address_outside_global_unicast_is_refused_as_reserved() -> None:
    with pytest.raises(BlockedAddressError) as refused:
        check_address("4000::1", allow_private=False)
    assert str(refused.value) == "refused to contact 4000::1: reserved address"
