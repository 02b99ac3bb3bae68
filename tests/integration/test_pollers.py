"""devstack.pollers: the batching window of an SQS mapping, honoured as Lambda honours it (moto)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from devstack.pollers import MappingError, QueuePoller
from devstack.provision import EventSourceMapping


class Recorder:
    """A function that records each batch it is invoked with."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self._lock = threading.Lock()

    def invoke(self, event: dict[str, Any]) -> Any:
        with self._lock:
            self.batches.append([record["body"] for record in event["Records"]])
        return {"batchItemFailures": []}

    def wait_for(self, messages: int, timeout: float = 30) -> list[list[str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if sum(len(batch) for batch in self.batches) >= messages:
                    return list(self.batches)
            time.sleep(0.02)
        raise AssertionError(f"fewer than {messages} messages were handed to the function")


@pytest.fixture
def sqs(moto_endpoint: str) -> Any:
    return boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def queue(sqs: Any) -> str:
    return str(sqs.create_queue(QueueName=f"poll-{uuid.uuid4().hex[:8]}")["QueueUrl"])


def mapping(queue_url: str, *, batch_size: int = 10, window: int = 0) -> EventSourceMapping:
    return EventSourceMapping(
        queue="EventsQueue",
        queue_url=queue_url,
        queue_arn="arn:aws:sqs:us-east-1:123456789012:events",
        function="DispatchFunction",
        batch_size=batch_size,
        batching_window_seconds=window,
        function_response_types=("ReportBatchItemFailures",),
        maximum_concurrency=None,
        enabled=True,
    )


@pytest.fixture
def running() -> Iterator[list[QueuePoller]]:
    pollers: list[QueuePoller] = []
    yield pollers
    for poller in pollers:
        poller.request_stop()
    for poller in pollers:
        poller.join()


def start(poller: QueuePoller, running: list[QueuePoller]) -> QueuePoller:
    running.append(poller)
    poller.start()
    return poller


def test_without_a_window_each_message_is_handed_over_as_soon_as_it_is_received(sqs, queue, running):
    function = Recorder()
    start(QueuePoller(mapping(queue, window=0), function, sqs, region="us-east-1"), running)

    for n in range(3):
        sqs.send_message(QueueUrl=queue, MessageBody=f"m{n}")
        # The next message is sent only once this one has reached the function, alone.
        assert function.wait_for(n + 1)[-1] == [f"m{n}"]

    assert function.batches == [["m0"], ["m1"], ["m2"]]

    # Acknowledged: the poller deletes a batch just after the function returns, so poll for it.
    def in_flight() -> str:
        attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
        return str(attributes["ApproximateNumberOfMessagesNotVisible"])

    deadline = time.monotonic() + 10
    while in_flight() != "0" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert in_flight() == "0"


def test_a_window_gathers_what_arrives_after_the_first_message_into_one_batch(sqs, queue, running):
    function = Recorder()
    start(QueuePoller(mapping(queue, window=5), function, sqs, region="us-east-1"), running)

    sqs.send_message(QueueUrl=queue, MessageBody="first")
    # Sent while the first is held for the window: both go in one invocation.
    for n in range(3):
        sqs.send_message(QueueUrl=queue, MessageBody=f"later{n}")

    assert [sorted(batch) for batch in function.wait_for(4)] == [["first", "later0", "later1", "later2"]]


def test_a_full_batch_ends_the_window_early(sqs, queue, running):
    for n in range(10):
        sqs.send_message(QueueUrl=queue, MessageBody=f"m{n}")
    function = Recorder()

    # A 300 s window, yet ten messages make a full batch: handed over at once.
    start(QueuePoller(mapping(queue, window=300), function, sqs, region="us-east-1"), running)

    assert [len(batch) for batch in function.wait_for(10)] == [10]


@pytest.mark.parametrize(
    ("batch_size", "window"),
    [(11, 0), (10, 301), (0, 0), (10, -1)],
)
def test_a_mapping_lambda_would_refuse_is_refused(sqs, queue, batch_size, window):
    with pytest.raises(MappingError):
        QueuePoller(mapping(queue, batch_size=batch_size, window=window), Recorder(), sqs, region="us-east-1")


class Watched:
    """The SQS client, noting when a poller has started a receive."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs
        self.receiving = threading.Event()

    def receive_message(self, **request: Any) -> Any:
        self.receiving.set()
        return self._sqs.receive_message(**request)

    def delete_message_batch(self, **request: Any) -> Any:
        return self._sqs.delete_message_batch(**request)


def test_a_stop_that_abandons_receives_leaves_an_idle_long_poll_and_hands_over_nothing_after_it(sqs, queue):
    # A stack that owns its moto: Lambda's 20 s polls, and its stop does not wait for them.
    function, watched = Recorder(), Watched(sqs)
    poller = QueuePoller(mapping(queue), function, watched, region="us-east-1", long_poll_seconds=20)  # type: ignore[arg-type]
    poller.start()
    assert watched.receiving.wait(10)
    poller.request_stop(abandon_receives=True)
    poller.join()
    assert poller.polling  # join returned with the long poll under way

    # What the abandoned poll receives is not handed over: it comes back after the visibility timeout.
    sqs.send_message(QueueUrl=queue, MessageBody="after the stop")
    deadline = time.monotonic() + 10
    while poller.polling and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not poller.polling
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"
    assert function.batches == []
