"""The network guard refuses every non-public address form and lets public ones through."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from sethub.errors import BlockedAddressError, OutboundError
from sethub.netguard import check_address, forbidden_reason, is_odd_ipv4_spelling, resolve_public, vet_url

# Literal hosts as they appear in a URL, each refused when allow_private=False.
FORBIDDEN_HOSTS = [
    # IPv4 special ranges
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),  # AWS/GCP/Azure instance metadata
    ("169.254.170.2", "link-local"),  # ECS task metadata
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.0.8", "IETF protocol"),
    ("192.0.2.10", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.1", "benchmarking"),
    ("192.88.99.1", "6to4 relay"),
    # IPv6 special ranges
    ("[::1]", "loopback"),
    ("[::]", "unspecified"),
    ("[fe80::1]", "link-local"),
    ("[fd00:ec2::254]", "unique local"),  # AWS IMDS over IPv6
    ("[fc00::1]", "unique local"),
    ("[fec0::1]", "site-local"),
    ("[ff02::1]", "multicast"),
    ("[2001:db8::1]", "documentation"),
    ("[3fff::1]", "documentation"),
    ("[100::1]", "discard-only"),
    ("[2001:2::1]", "IETF protocol"),  # benchmarking
    ("[4000::1]", "reserved"),  # outside 2000::/3
    # IPv6 forms that carry a forbidden IPv4 address
    ("[::ffff:127.0.0.1]", "loopback"),  # IPv4-mapped
    ("[::ffff:7f00:1]", "loopback"),  # IPv4-mapped, hex
    ("[::ffff:169.254.169.254]", "link-local"),
    ("[::ffff:10.0.0.1]", "private"),
    ("[::127.0.0.1]", "IPv4-compatible"),
    ("[::a9fe:a9fe]", "IPv4-compatible"),
    ("[2002:7f00:1::]", "loopback"),  # 6to4 of 127.0.0.1
    ("[2002:a9fe:a9fe::1]", "link-local"),  # 6to4 of 169.254.169.254
    ("[2002:c0a8:101::]", "private"),  # 6to4 of 192.168.1.1
    ("[64:ff9b::7f00:1]", "loopback"),  # NAT64 of 127.0.0.1
    ("[64:ff9b::169.254.169.254]", "link-local"),
    ("[64:ff9b::a00:1]", "private"),
    ("[64:ff9b:1::a00:1]", "local-use NAT64"),
    ("[2001:0:4136:e378:8000:63bf:3fff:fdd2]", "Teredo"),
]

ODD_IPV4_SPELLINGS = [
    "2130706433",  # decimal 127.0.0.1
    "0x7f000001",  # hex
    "0x7f.1",  # hex, shortened
    "0177.0.0.1",  # octal
    "0177.1",
    "127.1",  # shortened
    "127.0.1",
    "0x7f.0.0.1",
    "017700000001",  # octal, whole
    "2852039166",  # decimal 169.254.169.254
    "0xa9fea9fe",
    "0251.0376.0251.0376",
    "10.1",
    "0",
]

PUBLIC_HOSTS = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.1",  # just above CGNAT
    "172.32.0.1",  # just above 172.16/12
    "[2606:4700::1111]",
    "[2a00:1450:4001:81b::200e]",
    "[::ffff:93.184.216.34]",  # mapped public IPv4
    "[2002:5db8:d822::1]",  # 6to4 of 93.184.216.34
    "[64:ff9b::5db8:d822]",  # NAT64 of 93.184.216.34
]


@pytest.mark.parametrize(("host", "reason"), FORBIDDEN_HOSTS)
def test_forbidden_literal_hosts_are_refused_with_a_reason(host: str, reason: str) -> None:
    with pytest.raises(BlockedAddressError) as caught:
        vet_url(f"https://{host}/callback", allow_private=False, allow_http=False)
    message = str(caught.value)
    assert reason in message
    assert "\n" not in message


@pytest.mark.parametrize(("host", "reason"), FORBIDDEN_HOSTS)
def test_forbidden_literal_hosts_are_refused_at_connect_resolution(host: str, reason: str) -> None:
    with pytest.raises(BlockedAddressError, match=reason):
        resolve_public(host, 443, allow_private=False)


@pytest.mark.parametrize("host", ODD_IPV4_SPELLINGS)
def test_odd_ipv4_spellings_are_refused_outright(host: str) -> None:
    assert is_odd_ipv4_spelling(host)
    with pytest.raises(BlockedAddressError, match="unusual spelling"):
        vet_url(f"https://{host}:8443/x", allow_private=False, allow_http=False)
    # Even where private addresses are allowed: no real callback is spelled this way.
    with pytest.raises(BlockedAddressError, match="unusual spelling"):
        resolve_public(host, 443, allow_private=True)


@pytest.mark.parametrize("host", ["example.com", "93.184.216.34", "1e100.net", "deadbeef", "0x", "::1"])
def test_ordinary_names_and_canonical_literals_are_not_odd_spellings(host: str) -> None:
    assert not is_odd_ipv4_spelling(host)


@pytest.mark.parametrize("host", PUBLIC_HOSTS)
def test_public_addresses_are_allowed(host: str) -> None:
    vet_url(f"https://{host}/hook?x=1", allow_private=False, allow_http=False)
    assert resolve_public(host, 443, allow_private=False) == [host.strip("[]")]


def test_a_name_resolving_to_loopback_is_refused() -> None:
    with pytest.raises(BlockedAddressError, match="loopback"):
        vet_url("https://localhost/cb", allow_private=False, allow_http=False)
    with pytest.raises(BlockedAddressError, match="loopback"):
        resolve_public("localhost.", 443, allow_private=False)


def test_allow_private_lifts_the_address_rules_and_returns_the_resolved_addresses() -> None:
    vet_url("https://localhost/cb", allow_private=True, allow_http=False)
    vet_url("https://169.254.169.254/latest/meta-data", allow_private=True, allow_http=False)
    addresses = resolve_public("localhost", 8080, allow_private=True)
    assert addresses
    assert set(addresses) <= {"127.0.0.1", "::1"}


def test_allow_private_does_not_lift_the_scheme_rule() -> None:
    with pytest.raises(BlockedAddressError, match="scheme must be https"):
        vet_url("http://localhost/cb", allow_private=True, allow_http=False)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://93.184.216.34/cb", "scheme must be https, not 'http'"),
        ("ftp://93.184.216.34/cb", "scheme must be https"),
        ("file:///etc/passwd", "scheme must be https"),
        ("gopher://93.184.216.34:70/", "scheme must be https"),
        ("//93.184.216.34/cb", "scheme must be https"),
        ("93.184.216.34/cb", "scheme must be https"),
        ("https:///cb", "no host"),
        ("https://user:secret@93.184.216.34/cb", "user info"),
        ("https://exa mple.com/", "malformed URL"),
        ("https://93.184.216.34:99999/", "malformed URL"),
    ],
)
def test_malformed_or_wrong_scheme_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(BlockedAddressError) as caught:
        vet_url(url, allow_private=False, allow_http=False)
    assert reason in str(caught.value)
    assert "secret" not in str(caught.value)


def test_http_is_accepted_only_when_allowed() -> None:
    vet_url("http://93.184.216.34/cb", allow_private=False, allow_http=True)
    vet_url("HTTPS://93.184.216.34/cb", allow_private=False, allow_http=False)
    with pytest.raises(BlockedAddressError, match="https or http"):
        vet_url("ftp://93.184.216.34/cb", allow_private=False, allow_http=True)


def test_backslash_userinfo_confusion_is_judged_on_the_host_that_would_be_contacted() -> None:
    # urllib3 reads the host as 127.0.0.1 here, and that is what it would connect to.
    with pytest.raises(BlockedAddressError, match="loopback"):
        vet_url("https://127.0.0.1\\@93.184.216.34/", allow_private=False, allow_http=False)


def test_an_unresolvable_host_is_left_to_the_connect_time_check() -> None:
    vet_url("https://does-not-exist.invalid/cb", allow_private=False, allow_http=False)


def test_check_address_and_forbidden_reason_agree() -> None:
    assert forbidden_reason(ipaddress.ip_address("93.184.216.34")) is None
    assert forbidden_reason(ipaddress.ip_address("169.254.169.254")) is not None
    check_address("2606:4700::1111", allow_private=False)
    check_address("127.0.0.1", allow_private=True)
    with pytest.raises(BlockedAddressError, match="not an IP address"):
        check_address("localhost", allow_private=False)


# --- DNS answers that mix public and private addresses -----------------------------------------


AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]


def _answers(*addresses: str) -> list[AddrInfo]:
    """What ``socket.getaddrinfo`` returns for a name with these A/AAAA records, in this order."""
    infos: list[AddrInfo] = []
    for address in addresses:
        if ":" in address:
            infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, 443, 0, 0)))
        else:
            infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 443)))
    return infos


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """A resolver whose answers the test writes: host name -> addresses, in answer order.

    An attacker who controls a domain's DNS chooses these answers; the fake stands in for
    their name server (only names the test wrote resolve).
    """
    zone: dict[str, list[str]] = {}

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in zone:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return _answers(*zone[host])

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return zone


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (["93.184.216.34", "127.0.0.1"], "loopback"),
        (["169.254.169.254", "93.184.216.34"], "link-local"),
        (["93.184.216.34", "8.8.8.8", "10.0.0.7"], "private"),
        (["2606:4700::1111", "fd00:ec2::254"], "unique local"),
        (["93.184.216.34", "::ffff:127.0.0.1"], "loopback"),
    ],
)
def test_a_name_with_any_refused_answer_is_refused_whatever_the_order(
    dns: dict[str, list[str]], answers: list[str], reason: str
) -> None:
    # GIVEN a name whose DNS answers mix public addresses with a forbidden one
    dns["mixed.example"] = answers

    # THEN the name is refused at subscribe time and at connect time
    with pytest.raises(BlockedAddressError, match=reason):
        vet_url("https://mixed.example/cb", allow_private=False, allow_http=False)
    with pytest.raises(BlockedAddressError, match=reason):
        resolve_public("mixed.example", 443, allow_private=False)


def test_a_name_with_only_public_answers_resolves_to_all_of_them_in_order(dns: dict[str, list[str]]) -> None:
    dns["public.example"] = ["93.184.216.34", "2606:4700::1111", "93.184.216.34", "8.8.8.8"]

    vet_url("https://public.example/cb", allow_private=False, allow_http=False)
    assert resolve_public("public.example", 443, allow_private=False) == [
        "93.184.216.34",
        "2606:4700::1111",
        "8.8.8.8",
    ]


def test_allow_private_accepts_mixed_answers(dns: dict[str, list[str]]) -> None:
    dns["mixed.example"] = ["93.184.216.34", "127.0.0.1"]

    assert resolve_public("mixed.example", 443, allow_private=True) == ["93.184.216.34", "127.0.0.1"]


def test_a_name_is_looked_up_as_written_but_for_its_final_dot() -> None:
    # Names starting or ending with letters that look like trimming targets stay whole.
    asked: list[str] = []

    def recording_resolver(host: str, port: int) -> list[tuple[Any, ...]]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    for host in ("Xylophone.example.", "rp.boX", "XX.example"):
        addresses = resolve_public(host, 443, allow_private=False, resolver=recording_resolver)
        assert addresses == ["93.184.216.34"]
    assert asked == ["Xylophone.example", "rp.boX", "XX.example"]


@pytest.mark.parametrize("host", ["", "[]", "."])
def test_a_url_without_a_host_is_refused_saying_so(host: str) -> None:
    with pytest.raises(BlockedAddressError) as refused:
        resolve_public(host, 443, allow_private=True)
    assert str(refused.value) == "URL has no host"


def test_a_name_that_does_not_resolve_says_why() -> None:
    def failing(host: str, port: int) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    def empty(host: str, port: int) -> list[tuple[Any, ...]]:
        return []

    with pytest.raises(OutboundError) as failed:
        resolve_public("gone.example", 443, allow_private=False, resolver=failing)
    assert str(failed.value) == "cannot resolve host 'gone.example': gaierror"
    with pytest.raises(OutboundError) as no_answer:
        resolve_public("empty.example", 443, allow_private=False, resolver=empty)
    assert str(no_answer.value) == "cannot resolve host 'empty.example': no addresses"


def test_an_ip_literal_needs_no_dns_even_when_the_resolver_is_down() -> None:
    def failing(host: str, port: int) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    # A callback at a public address keeps working through a DNS outage.
    assert resolve_public("93.184.216.34", 443, allow_private=False, resolver=failing) == ["93.184.216.34"]
    assert resolve_public("[2606:2800:220:1::1]", 443, allow_private=False, resolver=failing) == [
        "2606:2800:220:1::1"
    ]
