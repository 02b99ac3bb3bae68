"""Recovery: what is kept (one item per batch and topic), in which order it comes back,
which window, and what one recovery sends to whom."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from standardwebhooks import Webhook

from bench import cost
from bench.aws import _units as aws_units
from sethub import archive as archive_module
from sethub.archive import ARCHIVE_PREFIX, ArchivedEvent, decode, encode, in_order, items_for
from sethub.messages import ContentEvent, DeliveryRetry, SetEvent, parse_message
from sethub.queues import Outgoing
from sethub.recovery import BACKLOG_ERROR, NoSubscriptionError, parse_time, recover
from sethub.retry import RetryPolicy
from sethub.subscriptions import Subscription

TOPIC = "acme.login"
LOGIN = "https://schemas.identity.wso2.org/events/login/event-type/loginSuccess"
LOGOUT = "https://schemas.identity.wso2.org/events/session/event-type/sessionTerminated"
HUB = "http://127.0.0.1:3000/hub"
NOW = 1_764_500_000.0
WHSEC = "whsec_" + base64.b64encode(b"k" * 32).decode()


def set_event(
    jti: str, *, iat: int, toe: int | None = None, kind: str = LOGIN, topic: str = TOPIC
) -> SetEvent:
    claims: dict[str, Any] = {"iss": "https://hub", "jti": jti, "iat": iat, "events": {kind: {"n": jti}}}
    if toe is not None:
        claims["toe"] = toe
    return SetEvent(topic=topic, claims=claims, hub_url=HUB)


def kept(at: float, message: SetEvent | ContentEvent) -> ArchivedEvent:
    return ArchivedEvent(at, message)


# -- what is kept ------------------------------------------------------------------------


def test_a_batch_is_one_item_per_topic_expiring_after_the_retention():
    messages = [set_event("a", iat=1), set_event("b", iat=2, topic="acme.other"), set_event("c", iat=3)]

    items = items_for(messages, now=NOW, retention_days=14, token="t")

    assert sorted(item["pk"]["S"] for item in items) == [
        "ARCHIVE#TOPIC#acme.login",
        "ARCHIVE#TOPIC#acme.other",
    ]
    by_pk = {item["pk"]["S"]: item for item in items}
    assert [m.jti for m in decode(by_pk["ARCHIVE#TOPIC#acme.login"]["events"]["B"])] == ["a", "c"]
    assert by_pk["ARCHIVE#TOPIC#acme.login"]["n"] == {"N": "2"}
    assert all(item["ttl"] == {"N": str(int(NOW) + 14 * 86400)} for item in items)
    assert all(item["sk"]["S"].startswith(f"{int(NOW * 1000):015d}#t#") for item in items)
    assert len({item["sk"]["S"] for item in items}) == 2


def test_events_too_many_for_one_item_are_split_and_none_is_lost(monkeypatch):
    monkeypatch.setattr(archive_module, "ITEM_PAYLOAD_BYTES", 400)
    # Incompressible content, so that a few events exceed the limit.
    messages = [
        ContentEvent(
            topic=TOPIC,
            jti=f"j{n}",
            content_type="application/octet-stream",
            body_b64=base64.b64encode(hashlib.sha512(str(n).encode()).digest() * 2).decode(),
            hub_url=HUB,
        )
        for n in range(6)
    ]

    items = items_for(messages, now=NOW, retention_days=1)

    assert len(items) > 1
    assert all(len(item["events"]["B"]) <= 400 for item in items)
    assert [m.jti for item in items for m in decode(item["events"]["B"])] == [f"j{n}" for n in range(6)]


def test_kept_messages_come_back_as_they_were_queued():
    messages: list[SetEvent | ContentEvent] = [
        set_event("a", iat=1, toe=0),
        ContentEvent(topic=TOPIC, jti="c", content_type="text/plain", body_b64="aGk=", hub_url=HUB),
    ]
    assert decode(encode(messages)) == messages


# -- in which order ----------------------------------------------------------------------


def test_events_come_back_in_toe_order_then_iat_each_jti_once():
    events = [
        kept(NOW + 3, set_event("late-toe", iat=100, toe=50)),
        kept(NOW + 1, set_event("early-toe", iat=300, toe=10)),
        kept(NOW + 2, set_event("no-toe", iat=20)),  # iat stands in for toe
        kept(NOW + 5, set_event("early-toe", iat=300, toe=10)),  # SQS delivered it twice
        kept(NOW + 4, set_event("same-toe-later-iat", iat=400, toe=50)),
    ]

    ordered = in_order(events)

    assert [e.jti for e in ordered] == ["early-toe", "no-toe", "late-toe", "same-toe-later-iat"]
    # A duplicate keeps its first archiving.
    assert ordered[0].at == NOW + 1


def test_published_content_takes_its_place_by_the_time_it_was_kept():
    content = ContentEvent(
        topic=TOPIC, jti="content", content_type="text/plain", body_b64="aGk=", hub_url=HUB
    )
    events = [
        kept(200.0, content),
        kept(NOW, set_event("set-300", iat=300)),
        kept(NOW, set_event("set-100", iat=100)),
    ]
    assert [e.jti for e in in_order(events)] == ["set-100", "content", "set-300"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-11-30T08:00:00Z", 1_764_489_600.0),
        ("2025-11-30T08:00:00", 1_764_489_600.0),
        ("2025-11-30T10:00:00+02:00", 1_764_489_600.0),
        ("1764489600", 1_764_489_600.0),
        ("6h", NOW - 6 * 3600),
        ("2d", NOW - 2 * 86400),
        ("30m", NOW - 1800),
    ],
)
def test_a_window_starts_at_a_time_in_the_forms_an_operator_types(text, expected):
    assert parse_time(text, now=NOW) == expected


def test_a_time_that_is_none_of_them_is_refused():
    with pytest.raises(ValueError, match="not a time"):
        parse_time("yesterday", now=NOW)


# -- what a recovery sends ---------------------------------------------------------------


@dataclass
class FakeArchive:
    kept: list[ArchivedEvent]
    asked: list[tuple[str, float, float | None]] = field(default_factory=list)

    def events(self, topic: str, *, since: float, until: float | None = None, now: float | None = None):
        self.asked.append((topic, since, until))
        return in_order(e for e in self.kept if e.message.topic == topic and e.at >= since)


@dataclass
class FakeStore:
    subscription: Subscription | None
    removed: list[tuple[str, str]] = field(default_factory=list)

    def get_active(self, topic: str, callback: str, *, now: float) -> Subscription | None:
        s = self.subscription
        return s if s is not None and (s.topic, s.callback) == (topic, callback) else None

    def remove(self, topic: str, callback: str) -> None:
        self.removed.append((topic, callback))


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class FakeHttp:
    """Answers in turn (the last one for every request after)."""

    answers: list[int]
    sent: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def request(self, method: str, url: str, *, headers=None, body=None) -> Answer:
        self.sent.append((url, dict(headers or {}), body or b""))
        status = self.answers[min(len(self.sent), len(self.answers)) - 1]
        return Answer(status)


@dataclass
class FakeSender:
    queued: dict[str, list[Outgoing]] = field(default_factory=dict)

    def send(self, queue_url: str, messages: list[Outgoing]) -> None:
        self.queued.setdefault(queue_url, []).extend(messages)


class FakeSigner:
    def sign(self, claims: Mapping[str, Any]) -> str:
        return (
            "jws."
            + base64.urlsafe_b64encode(json.dumps(dict(claims), sort_keys=True).encode()).decode()
            + ".sig"
        )


@dataclass
class FakeRecords:
    written: list[Any] = field(default_factory=list)

    def write(self, attempts) -> None:
        self.written.extend(attempts)


CALLBACK = "http://crm.example/hook?token=t0ken"


def subscription(**changes: Any) -> Subscription:
    values: dict[str, Any] = {
        "topic": TOPIC,
        "callback": CALLBACK,
        "format": "json",
        "secret": b"s3cret",
        "lease_seconds": 3600,
        "expires_at": int(NOW) + 3600,
        "requested_at": 1,
        "sort_key": "SUB#x",
    }
    return Subscription(**(values | changes))


def run(store: FakeStore, kept_events: list[ArchivedEvent], http: FakeHttp, **kwargs: Any):
    sender, records = FakeSender(), FakeRecords()
    report = recover(
        archive=FakeArchive(kept_events),  # type: ignore[arg-type]
        subscriptions=store,
        topic=TOPIC,
        callback=CALLBACK,
        since=kwargs.pop("since", NOW),
        signer=FakeSigner(),
        http=http,
        records=records,  # type: ignore[arg-type]
        sender=sender,  # type: ignore[arg-type]
        retry_queue_url="retry",
        dead_letter_queue_url="dead",
        policy=RetryPolicy(schedule=(60, 600), jitter=0),
        now=kwargs.pop("now", lambda: NOW + 1000),
        **kwargs,
    )
    return report, sender, records


WINDOW = [
    kept(NOW - 10, set_event("before-window", iat=1, toe=1)),
    kept(NOW + 3, set_event("third", iat=30, toe=30)),
    kept(NOW + 1, set_event("first", iat=10, toe=10)),
    kept(NOW + 2, set_event("second", iat=20, toe=20, kind=LOGOUT)),
    kept(NOW + 2, set_event("other-topic", iat=15, topic="acme.other")),
]


def test_the_window_goes_to_the_one_callback_in_order_signed_as_it_is_subscribed_now():
    http = FakeHttp([200])

    report, sender, records = run(FakeStore(subscription()), WINDOW, http)

    assert [url for url, _, _ in http.sent] == [CALLBACK] * 3
    assert [json.loads(body)["jti"] for _, _, body in http.sent] == ["first", "second", "third"]
    for _, headers, body in http.sent:
        assert headers["Content-Type"] == "application/json"
        expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert headers["X-Hub-Signature"] == f"sha256={expected}"
        assert headers["x-hub-messageId"] == json.loads(body)["jti"]
    assert [o["status"] for o in report.outcomes] == ["ok", "ok", "ok"]
    assert (report.found, report.wanted) == (3, 3)
    assert [a.jti for a in records.written] == ["first", "second", "third"]
    assert {a.status for a in records.written} == {"ok"}
    assert sender.queued == {}


def test_standard_webhooks_jwt_subscribers_get_a_fresh_signature_a_receiver_verifies():
    http = FakeHttp([204])
    secret = WHSEC.encode()  # stored as given: sethub.webhooks derives the key

    # The receiver's package checks the timestamp against its clock: sent now.
    run(
        FakeStore(subscription(format="jwt", signing="standard-webhooks", secret=secret)),
        WINDOW,
        http,
        now=time.time,
    )

    assert len(http.sent) == 3
    for _, headers, body in http.sent:
        assert headers["Content-Type"] == "application/secevent+jwt"
        assert body.startswith(b"jws.")
        claims = json.loads(base64.urlsafe_b64decode(body.split(b".")[1]))
        assert claims["aud"] == TOPIC  # signed for this topic, as dispatch signs
        Webhook(WHSEC).verify(body, {k.lower(): v for k, v in headers.items()}, json_parse=False)


def test_the_subscription_event_filter_applies_to_recovery_too():
    http = FakeHttp([200])

    report, _, _ = run(FakeStore(subscription(events=frozenset({LOGOUT}))), WINDOW, http)

    assert [json.loads(body)["jti"] for _, _, body in http.sent] == ["second"]
    assert (report.found, report.wanted) == (3, 1)


def test_a_failure_hands_it_and_everything_after_it_to_the_retry_queue_unsent():
    http = FakeHttp([200, 503])

    report, sender, records = run(FakeStore(subscription()), WINDOW, http)

    # Two requests: the third event is not tried against a callback that just failed.
    assert len(http.sent) == 2
    assert [o["status"] for o in report.outcomes] == ["ok", "retrying", "queued"]
    retries = [parse_message(m.body) for m in sender.queued["retry"]]
    assert all(isinstance(r, DeliveryRetry) for r in retries)
    failed, backlog = retries
    assert isinstance(failed, DeliveryRetry)
    assert isinstance(backlog, DeliveryRetry)
    assert (failed.jti, failed.attempts, failed.last_error) == ("second", 1, "HTTP 503")
    assert base64.b64decode(failed.body_b64) == http.sent[1][2]  # byte-identical retries
    assert (backlog.jti, backlog.attempts, backlog.last_error) == ("third", 0, BACKLOG_ERROR)
    # Due with the failed one (its first scheduled delay), not before.
    assert failed.not_before == backlog.not_before == NOW + 1000 + 60
    assert [m.delay_seconds for m in sender.queued["retry"]] == [60, 60]
    assert [(a.jti, a.status) for a in records.written] == [("first", "ok"), ("second", "retrying")]


def test_a_failure_with_no_retries_left_is_a_dead_letter():
    http = FakeHttp([500])
    sender, records = FakeSender(), FakeRecords()

    report = recover(
        archive=FakeArchive(WINDOW),  # type: ignore[arg-type]
        subscriptions=FakeStore(subscription()),
        topic=TOPIC,
        callback=CALLBACK,
        since=NOW,
        signer=FakeSigner(),
        http=http,
        records=records,  # type: ignore[arg-type]
        sender=sender,  # type: ignore[arg-type]
        retry_queue_url="retry",
        dead_letter_queue_url="dead",
        policy=RetryPolicy(schedule=()),
        now=lambda: NOW + 1000,
    )

    assert [o["status"] for o in report.outcomes] == ["dead", "queued", "queued"]
    assert [parse_message(m.body).jti for m in sender.queued["dead"]] == ["first"]  # type: ignore[union-attr]


def test_gone_removes_the_subscription_and_stops():
    http = FakeHttp([410])
    store = FakeStore(subscription())

    report, sender, _ = run(store, WINDOW, http)

    assert len(http.sent) == 1
    assert store.removed == [(TOPIC, CALLBACK)]
    assert [o["status"] for o in report.outcomes] == ["gone"]
    assert sender.queued == {}


def test_a_dry_run_lists_the_window_and_sends_nothing():
    http = FakeHttp([200])

    report, sender, records = run(FakeStore(subscription()), WINDOW, http, dry_run=True)

    assert http.sent == []
    assert [(o["jti"], o["status"]) for o in report.outcomes] == [
        ("first", "would-send"),
        ("second", "would-send"),
        ("third", "would-send"),
    ]
    assert sender.queued == {}
    assert records.written == []


def test_no_live_subscription_for_that_callback_sends_nothing():
    http = FakeHttp([200])
    with pytest.raises(NoSubscriptionError, match=r"crm\.example"):
        run(FakeStore(subscription(callback="http://other.example/")), WINDOW, http)
    assert http.sent == []


def test_a_run_told_to_stop_saves_its_place_and_the_next_continues_after_it():
    http = FakeHttp([200])
    saved: list[tuple[Any, list[str]]] = []
    asked = iter([False, True])

    first, _, _ = run(
        FakeStore(subscription()),
        WINDOW,
        http,
        stop=lambda: next(asked),
        on_progress=lambda cursor, new: saved.append((cursor, [o["jti"] for o in new])),
    )

    assert not first.complete
    assert [json.loads(body)["jti"] for _, _, body in http.sent] == ["first"]
    ((cursor, jtis),) = saved
    assert jtis == ["first"]
    second, _, _ = run(FakeStore(subscription()), WINDOW, http, after=cursor)
    assert second.complete
    assert [json.loads(body)["jti"] for _, _, body in http.sent] == ["first", "second", "third"]
    assert (second.found, second.wanted) == (3, 3)  # the whole window, whatever was sent before


def test_after_a_failure_the_saved_place_is_past_the_events_handed_to_the_retry_queue():
    saved: list[tuple[Any, list[str]]] = []

    report, _, _ = run(
        FakeStore(subscription()),
        WINDOW,
        FakeHttp([503]),
        on_progress=lambda cursor, new: saved.append((cursor, [o["status"] for o in new])),
    )

    ((cursor, statuses),) = saved
    assert statuses == ["retrying", "queued", "queued"]
    assert cursor[-1] == "third"  # a run resumed from here sends nothing twice
    assert report.complete


# -- what keeping costs (make bench prices it on lines of its own) -----------------------


def test_the_bench_counts_archive_items_apart_from_the_other_writes():
    kept_items = items_for([set_event(f"e{n}", iat=n) for n in range(10)], now=NOW, retention_days=14)
    record = {"pk": {"S": "DELIVERY#e1"}, "sk": {"S": "1#a#0"}, "o": {"S": "x" * 700}}
    requests = [{"PutRequest": {"Item": item}} for item in [*kept_items, record]]

    units = aws_units("dynamodb.BatchWriteItem", {"RequestItems": {"hub": requests}}, {})

    # Ten SETs compress into one item of one write unit; the record is one more, counted as before.
    assert units["dynamodb archive WRU"] == 1
    assert units["dynamodb archive bytes"] == sum(cost.item_bytes(item) for item in kept_items)
    assert units["dynamodb WRU"] == 1
    assert cost.ARCHIVE_PREFIX == ARCHIVE_PREFIX


def test_archive_lines_price_the_writes_and_the_bytes_kept_for_the_retention():
    usage = cost.Usage(
        functions=(),
        api_requests=0,
        sqs_requests=0,
        dynamodb_write_units=0,
        dynamodb_read_units=0,
        kms_asymmetric_requests=0,
        archive_write_units=0.1,
        archive_bytes=600,
        archive_days=15,
    )

    lines = {line.item: line for line in cost.cost_per_events(usage, cost.Prices())}

    assert lines["Event archive writes (DynamoDB)"].dollars == pytest.approx(0.0625)
    storage = lines["Event archive storage (15 days, with PITR)"]
    # 600 MB for half a month: 0.3 GB-months at $0.25 + $0.20
    assert storage.quantity == pytest.approx(0.3)
    assert storage.dollars == pytest.approx(0.135)
