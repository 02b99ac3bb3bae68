"""sethub.ssf.auth without AWS: the token endpoint's answers and refusals, and the bearer check
of every SSF request (scopes, expiry, a receiver deleted), against an in-memory store."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from urllib.parse import quote

import pytest

from sethub.errors import BadRequestError
from sethub.ssf.auth import (
    MANAGE,
    READ,
    TOKEN_SECONDS,
    Authority,
    InsufficientScopeError,
    InvalidTokenError,
    Receiver,
    TokenError,
    client_record,
    new_secret,
    parse_clients,
)
from sethub.ssf.store import ClientRecord, SsfStore, TokenRecord

NOW = 1_700_000_000
SECRET = "s3cret-of-the-receiver"


class MemoryStore(SsfStore):
    """The receivers and tokens of SsfStore in dicts, counting client reads."""

    def __init__(self) -> None:
        self.clients: dict[str, ClientRecord] = {}
        self.tokens: dict[str, TokenRecord] = {}
        self.client_reads: list[str] = []

    def get_client(self, client_id: str) -> ClientRecord | None:
        self.client_reads.append(client_id)
        return self.clients.get(client_id)

    def put_token(self, token_hash: str, record: TokenRecord) -> None:
        self.tokens[token_hash] = record

    def get_token(self, token_hash: str) -> TokenRecord | None:
        return self.tokens.get(token_hash)


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    add(store, "rx", SECRET)
    return store


def add(
    store: MemoryStore, client_id: str, secret: str, scopes: frozenset[str] = frozenset((READ, MANAGE))
) -> None:
    # As stored, whatever the CLI would refuse (ids over the limit).
    store.clients[client_id] = ClientRecord(client_id=client_id, secret_hash=sha256(secret), scopes=scopes)


def basic(client_id: str, secret: str, scheme: str = "Basic") -> dict[str, str]:
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": f"{scheme} {base64.b64encode(pair).decode()}"}


def form(**fields: str) -> bytes:
    return "&".join(f"{name}={quote(value, safe='')}" for name, value in fields.items()).encode()


GRANT = form(grant_type="client_credentials")


def refusal(store: MemoryStore, headers: Mapping[str, str], body: bytes) -> TokenError:
    with pytest.raises(TokenError) as caught:
        Authority(store).issue(headers, body, now=NOW)
    return caught.value


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# The token endpoint


def test_a_client_with_basic_credentials_gets_an_hour_long_bearer_token_stored_only_as_its_hash(store):
    answer = Authority(store).issue(basic("rx", SECRET), GRANT, now=NOW)

    token = answer["access_token"]
    assert isinstance(token, str)
    assert len(token) == 43  # 256 random bits, URL-safe base64
    assert answer == {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": "ssf.manage ssf.read",
    }
    assert TOKEN_SECONDS == 3600
    assert store.tokens == {
        sha256(token): TokenRecord(client_id="rx", scopes=frozenset((READ, MANAGE)), expires_at=NOW + 3600)
    }


def test_basic_credentials_are_read_in_any_letter_case_and_url_decoded(store):
    # A client id the CLI refuses, but RFC 6749 2.3.1 says how Basic carries it.
    store.clients["acme rx:1"] = ClientRecord(
        client_id="acme rx:1", secret_hash=sha256("p@ss word:%"), scopes=frozenset((READ,))
    )
    headers = {"authorization": basic("acme rx:1", "p@ss word:%", scheme="bAsIc")["Authorization"]}

    answer = Authority(store).issue(headers, GRANT, now=NOW)

    assert store.tokens[sha256(str(answer["access_token"]))].client_id == "acme rx:1"


def test_a_secret_sent_with_a_raw_colon_is_all_after_the_first_colon(store):
    # Client ids cannot hold a colon (client_record), so the first one ends the id.
    add(store, "rx2", "pa:ss:word")
    pair = base64.b64encode(b"rx2:pa:ss:word").decode()

    answer = Authority(store).issue({"Authorization": f"Basic {pair}"}, GRANT, now=NOW)

    assert store.tokens[sha256(str(answer["access_token"]))].client_id == "rx2"


def test_basic_credentials_with_characters_outside_base64_are_refused_not_cleaned(store):
    pair = base64.b64encode(f"rx:{SECRET}".encode()).decode()

    error = refusal(store, {"Authorization": f"Basic {pair[:4]}*{pair[4:]}"}, GRANT)

    assert (error.error, error.reason) == ("invalid_client", "malformed HTTP Basic credentials")
    assert store.tokens == {}


def test_a_form_with_empty_or_valueless_fields_is_read_leniently(store):
    body = form(grant_type="client_credentials", client_id="rx", client_secret=SECRET) + b"&&flag&scope="

    answer = Authority(store).issue({}, body, now=NOW)

    assert answer["scope"] == "ssf.manage ssf.read"


def test_form_fields_authenticate_a_client_without_basic(store):
    body = form(grant_type="client_credentials", client_id="rx", client_secret=SECRET)

    answer = Authority(store).issue({}, body, now=NOW)

    assert store.tokens[sha256(str(answer["access_token"]))].client_id == "rx"


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
    ],
)
def test_malformed_basic_credentials_are_refused_as_an_invalid_client(store, authorization):
    error = refusal(store, {"Authorization": authorization}, GRANT)

    assert (error.error, error.status, error.reason) == (
        "invalid_client",
        401,
        "malformed HTTP Basic credentials",
    )
    assert store.tokens == {}


@pytest.mark.parametrize(
    "body",
    [
        GRANT,
        form(grant_type="client_credentials", client_id="rx"),
        form(grant_type="client_credentials", client_secret=SECRET),
        form(grant_type="client_credentials", client_id="", client_secret=SECRET),
    ],
)
def test_a_request_without_both_client_id_and_secret_is_refused(store, body):
    error = refusal(store, {}, body)

    assert (error.error, error.status, error.reason) == (
        "invalid_client",
        401,
        "client authentication is required",
    )


@pytest.mark.parametrize("body", [b"", form(grant_type="password"), form(grant_type="Client_Credentials")])
def test_only_the_client_credentials_grant_is_supported(store, body):
    error = refusal(store, basic("rx", SECRET), body)

    assert (error.error, error.status, error.reason) == (
        "unsupported_grant_type",
        400,
        "grant_type must be client_credentials",
    )
    assert store.tokens == {}


def test_a_body_that_is_not_a_form_is_refused_as_an_invalid_request(store):
    error = refusal(store, basic("rx", SECRET), b"grant_type=\xff\xfe")

    assert (error.error, error.status, error.reason) == (
        "invalid_request",
        400,
        "the body must be application/x-www-form-urlencoded",
    )


@pytest.mark.parametrize(("client_id", "secret"), [("rx", "wrong"), ("rx", SECRET + "x"), ("nobody", SECRET)])
def test_a_wrong_secret_or_an_unknown_client_gets_the_same_refusal(store, client_id, secret):
    error = refusal(store, basic(client_id, secret), GRANT)

    assert (error.error, error.status, error.reason) == (
        "invalid_client",
        401,
        "unknown client or wrong secret",
    )
    assert store.tokens == {}


def test_client_ids_and_secrets_over_their_limits_are_refused_without_a_read(store):
    long_id, long_secret = "c" * 129, "s" * 513
    add(store, long_id, SECRET)
    add(store, "rx2", long_secret)

    for client_id, secret in ((long_id, SECRET), ("rx2", long_secret)):
        error = refusal(store, basic(client_id, secret), GRANT)
        assert (error.error, error.reason) == ("invalid_client", "unknown client or wrong secret")
    assert store.client_reads == []


def test_client_ids_and_secrets_at_their_limits_get_a_token(store):
    add(store, "c" * 128, "s" * 512)

    answer = Authority(store).issue(basic("c" * 128, "s" * 512), GRANT, now=NOW)

    assert answer["token_type"] == "Bearer"
    assert store.client_reads == ["c" * 128]


def test_a_token_has_the_scopes_asked_for_within_the_clients(store):
    add(store, "reader", SECRET, frozenset((READ,)))
    authority = Authority(store)

    narrowed = authority.issue(
        basic("rx", SECRET), form(grant_type="client_credentials", scope=READ), now=NOW
    )
    error = refusal(
        store, basic("reader", SECRET), form(grant_type="client_credentials", scope=f"{READ} {MANAGE}")
    )

    assert narrowed["scope"] == READ
    assert store.tokens[sha256(str(narrowed["access_token"]))].scopes == frozenset((READ,))
    assert (error.error, error.status, error.reason) == (
        "invalid_scope",
        400,
        "the client may not have the requested scope",
    )


# The bearer check of every SSF request


def token_for(
    store: MemoryStore, client_id: str = "rx", secret: str = SECRET, scope: str | None = None
) -> str:
    fields = {"grant_type": "client_credentials"} | ({"scope": scope} if scope else {})
    token = Authority(store).issue(basic(client_id, secret), form(**fields), now=NOW)["access_token"]
    assert isinstance(token, str)
    return token


def bearer_refusal(store: MemoryStore, headers: Mapping[str, str] | None, *, now: int = NOW) -> str:
    with pytest.raises(InvalidTokenError) as caught:
        Authority(store).authenticate(headers, now=now)
    assert caught.value.status == 401
    return caught.value.reason


def test_a_bearer_token_authenticates_its_receiver_until_it_expires(store):
    token = token_for(store)
    authority = Authority(store)

    receiver = authority.authenticate({"Authorization": f"Bearer {token}"}, now=NOW + TOKEN_SECONDS - 1)

    assert receiver == Receiver(client_id="rx", scopes=frozenset((READ, MANAGE)))
    assert bearer_refusal(store, {"Authorization": f"Bearer {token}"}, now=NOW + TOKEN_SECONDS) == (
        "the access token is invalid or expired"
    )


def test_the_scheme_and_header_name_are_read_in_any_letter_case_and_spaces_around_are_ignored(store):
    token = token_for(store)

    receiver = Authority(store).authenticate({"AUTHORIZATION": f"  bEaReR   {token}  "}, now=NOW)

    assert receiver.client_id == "rx"


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer   "},
        {"X-Api-Key": "k"},
    ],
)
def test_a_request_without_a_bearer_token_is_refused_saying_how_to_send_one(store, headers):
    assert bearer_refusal(store, headers) == "a bearer access token is required (Authorization: Bearer ...)"


def test_a_token_in_another_scheme_or_over_512_characters_is_refused_unread(store):
    token = token_for(store)
    store.tokens[sha256("t" * 513)] = store.tokens[sha256(token)]
    store.tokens[sha256("t" * 512)] = store.tokens[sha256(token)]

    assert bearer_refusal(store, {"Authorization": f"Basic {token}"}) == (
        "a bearer access token is required (Authorization: Bearer ...)"
    )
    assert bearer_refusal(store, {"Authorization": "Bearer " + "t" * 513}) == (
        "a bearer access token is required (Authorization: Bearer ...)"
    )
    assert Authority(store).authenticate({"Authorization": "Bearer " + "t" * 512}, now=NOW).client_id == "rx"


def test_an_unknown_token_is_refused(store):
    token_for(store)

    assert (
        bearer_refusal(store, {"Authorization": "Bearer not-a-token"})
        == "the access token is invalid or expired"
    )


def test_deleting_a_receiver_revokes_its_tokens_at_once(store):
    token = token_for(store)
    del store.clients["rx"]

    assert bearer_refusal(store, {"Authorization": f"Bearer {token}"}) == (
        "the access token's receiver no longer exists"
    )


def test_a_token_keeps_only_the_scopes_its_receiver_still_has(store):
    token = token_for(store)
    add(store, "rx", SECRET, frozenset((READ,)))

    receiver = Authority(store).authenticate({"Authorization": f"Bearer {token}"}, now=NOW)

    assert receiver.scopes == frozenset((READ,))


def test_manage_includes_read_but_read_never_allows_managing():
    Receiver("rx", frozenset((MANAGE,))).require(READ)
    Receiver("rx", frozenset((READ,))).require(READ)
    Receiver("rx", frozenset((MANAGE,))).require(MANAGE)

    for scopes, needed in (({READ}, MANAGE), (set(), READ), (set(), MANAGE)):
        with pytest.raises(InsufficientScopeError) as caught:
            Receiver("rx", frozenset(scopes)).require(needed)
        assert caught.value.status == 403
        assert caught.value.reason == f"this request needs the {needed} scope"


# Receivers as the operator and the local stack make them


def test_local_clients_are_id_secret_pairs_separated_by_commas_and_broken_pairs_are_skipped():
    assert parse_clients(" a:b , c:d:e,broken,:nosecret,noid:,") == [("a", "b"), ("c", "d:e")]


def test_a_receiver_record_stores_the_secrets_hash_never_the_secret():
    record = client_record("rx", SECRET, scopes=frozenset((READ,)), name="Acme", now=NOW)

    assert record == ClientRecord(
        client_id="rx", secret_hash=sha256(SECRET), scopes=frozenset((READ,)), name="Acme", created_at=NOW
    )
    assert client_record("rx", SECRET) == ClientRecord(
        client_id="rx", secret_hash=sha256(SECRET), scopes=frozenset((READ, MANAGE)), name="", created_at=0
    )


@pytest.mark.parametrize("client_id", ["", "c" * 129, "a:b", "a,b", "a b", "tab\tid", "a\x00", "del\x7f"])
def test_a_client_id_must_be_1_to_128_printable_characters_without_colon_or_comma(client_id):
    with pytest.raises(BadRequestError) as caught:
        client_record(client_id, SECRET)

    assert caught.value.status == 400
    assert caught.value.reason == "a client id is 1 to 128 printable characters, no ':' or ','"


def test_a_client_id_of_128_printable_characters_is_accepted():
    assert client_record("!" + "~" * 127, SECRET).client_id == "!" + "~" * 127
    assert client_record("Acme-RX_01.prod", SECRET).client_id == "Acme-RX_01.prod"


def test_an_unknown_scope_is_refused_naming_it_and_the_two_there_are():
    with pytest.raises(BadRequestError) as caught:
        client_record("rx", SECRET, scopes=frozenset((READ, "ssf.write", "ssf.admin")))

    assert caught.value.reason == "unknown scope 'ssf.admin': use ssf.read and/or ssf.manage"


def test_a_new_client_secret_has_256_random_bits():
    secrets = {new_secret() for _ in range(3)}

    assert len(secrets) == 3
    assert all(len(secret) == 43 for secret in secrets)
