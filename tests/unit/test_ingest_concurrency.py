"""Ingest claims jti markers and sends SQS batches concurrently, and stays all or nothing:
if any claim or any batch fails, what was claimed is released and nothing is accepted.
No network: markers and the queue sender are in-memory fakes."""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Sequence
from typing import Any

import pytest

from sethub.catalog import WSO2_EVENT_TYPES
from sethub.clients import AwsClients
from sethub.errors import BadRequestError, UpstreamError
from sethub.ingest import Ingestor
from sethub.queues import Outgoing
from sethub.settings import Settings

SETTINGS = Settings(events_queue_url="https://sqs.example/events", open_topics=True, issuer="https://hub")
LOGIN = WSO2_EVENT_TYPES["loginSuccess"]
WAIT_SECONDS = 10


class Markers:
    def __init__(self, *, fail: Collection[str] = (), known: Collection[str] = (), meet: int = 0) -> None:
        self.fail = set(fail)
        self.claimed: set[str] = set(known)
        self.released: list[str] = []
        self.lock = threading.Lock()
        # ``meet`` claims must be in flight together before any of them returns.
        self.barrier = threading.Barrier(meet, timeout=WAIT_SECONDS) if meet else None

    def claim(self, jti: str, topic: str, *, now: float, publisher: str = "") -> bool:
        if self.barrier is not None:
            self.barrier.wait()
        if jti in self.fail:
            raise UpstreamError("DynamoDB could not record an event: InternalServerError")
        with self.lock:
            if jti in self.claimed:
                return False
            self.claimed.add(jti)
            return True

    def release(self, jti: str, *, publisher: str = "") -> None:
        with self.lock:
            self.claimed.discard(jti)
            self.released.append(jti)


class Sender:
    def __init__(self, *, refuse_batch: int | None = None, meet: int = 0) -> None:
        self.refuse_batch = refuse_batch
        self.sent: list[str] = []
        self.batches = 0
        self.lock = threading.Lock()
        self.barrier = threading.Barrier(meet, timeout=WAIT_SECONDS) if meet else None

    def send_all(self, queue_url: str, messages: Sequence[Outgoing]) -> list[int]:
        if self.barrier is not None:
            self.barrier.wait()
        with self.lock:
            self.batches += 1
            if self.refuse_batch is not None and any(
                json.loads(m.body)["claims"]["txn"] == str(self.refuse_batch) for m in messages
            ):
                return list(range(len(messages)))
            self.sent.extend(json.loads(m.body)["claims"]["jti"] for m in messages)
        return []


def events(count: int, *, with_jti: bool = True, prefix: str = "e") -> list[dict[str, Any]]:
    return [
        {
            "topic": "acme.login",
            "events": {LOGIN: {"user": {"id": str(n)}}},
            "txn": str(n),
            **({"jti": f"{prefix}{n}"} if with_jti else {}),
        }
        for n in range(count)
    ]


def ingestor(markers: Markers, sender: Sender) -> Ingestor:
    return Ingestor(AwsClients(), SETTINGS, markers=markers, sender=sender)  # type: ignore[arg-type]


def test_markers_are_claimed_concurrently_and_every_event_is_sent_once():
    markers, sender = Markers(meet=3), Sender()

    accepted = ingestor(markers, sender).ingest(events(3), base_url="https://hub")

    assert [a["jti"] for a in accepted] == ["e0", "e1", "e2"]
    assert sorted(sender.sent) == ["e0", "e1", "e2"]


def test_sqs_batches_are_sent_concurrently():
    markers, sender = Markers(), Sender(meet=3)

    ingestor(markers, sender).ingest(events(25, with_jti=False), base_url="https://hub")

    assert sender.batches == 3
    assert len(sender.sent) == 25


def test_a_failed_claim_releases_the_others_and_sends_nothing():
    markers, sender = Markers(fail={"e3"}), Sender()

    with pytest.raises(UpstreamError):
        ingestor(markers, sender).ingest(events(6), base_url="https://hub")

    assert sender.sent == []
    assert markers.claimed == set()
    assert sorted(markers.released) == ["e0", "e1", "e2", "e4", "e5"]


def test_a_refused_sqs_batch_releases_every_claim_so_a_retry_is_accepted():
    markers, sender = Markers(), Sender(refuse_batch=12)

    with pytest.raises(UpstreamError, match="SQS refused 10 of 30 messages"):
        ingestor(markers, sender).ingest(events(30), base_url="https://hub")
    assert markers.claimed == set()

    retry = Sender()
    ingestor(markers, retry).ingest(events(30), base_url="https://hub")
    assert len(retry.sent) == 30


def test_already_accepted_and_repeated_jtis_are_answered_but_enqueued_once():
    markers, sender = Markers(known={"e1"}), Sender()
    batch = events(3) + events(3)  # every jti twice in one request

    accepted = ingestor(markers, sender).ingest(batch, base_url="https://hub")

    assert len(accepted) == 6
    assert sorted(sender.sent) == ["e0", "e2"]


class Topics:
    """A topic directory whose check waits until ``meet`` parties (claims included) are in flight."""

    def __init__(self, known: Collection[str], *, meet: int = 0) -> None:
        self.known = set(known)
        self.barrier = threading.Barrier(meet, timeout=WAIT_SECONDS) if meet else None

    def topic_exists(self, topic: str) -> bool:
        if self.barrier is not None:
            self.barrier.wait()
        return topic in self.known


def checked_ingestor(markers: Markers, sender: Sender, topics: Topics) -> Ingestor:
    settings = Settings(events_queue_url="https://sqs.example/events", issuer="https://hub")
    return Ingestor(AwsClients(), settings, topics=topics, markers=markers, sender=sender)  # type: ignore[arg-type]


def test_the_topic_check_and_the_claim_of_a_single_event_are_made_side_by_side():
    # The topic check and the claim each wait for the other: sequential calls would time out.
    barrier = threading.Barrier(2, timeout=WAIT_SECONDS)
    markers, topics = Markers(), Topics({"acme.login"})
    markers.barrier = topics.barrier = barrier
    sender = Sender()

    accepted = checked_ingestor(markers, sender, topics).ingest(events(1), base_url="https://hub")

    assert [a["jti"] for a in accepted] == ["e0"]
    assert sender.sent == ["e0"]


def test_an_unknown_topic_refuses_the_request_and_releases_what_was_claimed_meanwhile():
    markers, sender = Markers(), Sender()

    with pytest.raises(BadRequestError, match="unknown topic"):
        checked_ingestor(markers, sender, Topics(set())).ingest(events(2), base_url="https://hub")

    assert sender.sent == []
    assert markers.claimed == set()
    # Once the topic exists, the same events are accepted: nothing of the refusal remains.
    retry = Sender()
    checked_ingestor(markers, retry, Topics({"acme.login"})).ingest(events(2), base_url="https://hub")
    assert sorted(retry.sent) == ["e0", "e1"]
