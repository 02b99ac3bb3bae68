"""SQS → function event source mappings, driven the way Lambda drives them.

moto's own SQS trigger invokes one record at a time and ignores ``batchItemFailures``,
so devstack polls the queues itself: up to ``BatchSize`` messages gathered within
``MaximumBatchingWindowInSeconds``, one invocation per batch, then every message not
reported in ``batchItemFailures`` is deleted (none if the handler raised). As on Lambda,
a window of 0 invokes with what one receive returned, as soon as it returned it; a
window of N seconds keeps gathering, from the first message received, until the batch
is full or N seconds have passed; a mapping Lambda would refuse is refused. Unacknowledged
messages come back after the queue's visibility timeout, and moto moves them to the
dead-letter queue after ``maxReceiveCount`` receives.

Like Lambda's mapping, each queue gets several pollers from the start (the stack starts five,
at most ``MaximumConcurrency``), each in a long poll, so a message is received as soon as it is
sent even while other pollers wait on the function. The long polls last 20 s, as Lambda's do:
an idle poller costs one ReceiveMessage round trip through moto per poll (about 8 ms of CPU
here), so 1 s polls would cost each idle stack most of a percent of a core per poller. moto
answers a long poll as soon as a message is sent, and looks again every second for messages
whose delay or visibility timeout ended, so the length of the poll delays nothing. A stack
that owns its moto stops without waiting for idle long polls (``request_stop(abandon_receives=True)``);
one attached to a shared moto polls for 1 s and waits, so that no poll of a stopped stack
takes a message after it stopped.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

from devstack.functions import Invocable
from devstack.provision import EventSourceMapping

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

SQS_MAX_RECEIVE = 10
LONG_POLL_SECONDS = 1
"""Short long-polls, so a stop request is noticed within about a second (a shared moto)."""
LAMBDA_LONG_POLL_SECONDS = 20
"""Lambda's long polls: the idle cost of a poller is one round trip per poll."""
MAX_BATCH_SIZE = 10_000
MAX_BATCHING_WINDOW_SECONDS = 300


class MappingError(ValueError):
    """A mapping Lambda would refuse to create."""


def check_mapping(mapping: EventSourceMapping) -> None:
    """Lambda's limits for an SQS standard queue mapping: ``MappingError`` where it would refuse it."""
    if not 1 <= mapping.batch_size <= MAX_BATCH_SIZE:
        raise MappingError(f"{mapping.queue}: BatchSize must be 1..{MAX_BATCH_SIZE}")
    if not 0 <= mapping.batching_window_seconds <= MAX_BATCHING_WINDOW_SECONDS:
        raise MappingError(
            f"{mapping.queue}: MaximumBatchingWindowInSeconds must be 0..{MAX_BATCHING_WINDOW_SECONDS}"
        )
    if mapping.batch_size > SQS_MAX_RECEIVE and mapping.batching_window_seconds < 1:
        raise MappingError(
            f"{mapping.queue}: a BatchSize over {SQS_MAX_RECEIVE} needs MaximumBatchingWindowInSeconds >= 1"
        )


class QueuePoller:
    """One poller thread per unit of concurrency of a mapping."""

    def __init__(
        self,
        mapping: EventSourceMapping,
        function: Invocable,
        sqs: SQSClient,
        *,
        region: str,
        concurrency: int = 1,
        visibility_timeout: int | None = None,
        long_poll_seconds: int = LONG_POLL_SECONDS,
    ) -> None:
        check_mapping(mapping)
        self.mapping = mapping
        self._function = function
        self._sqs = sqs
        self._region = region
        self._visibility_timeout = visibility_timeout
        self._long_poll = max(1, min(LAMBDA_LONG_POLL_SECONDS, long_poll_seconds))
        self._stop = threading.Event()
        # Batches being handed to the function: stop waits for these, never for an idle poll.
        self._busy = 0
        self._abandoning = False
        self._idle = threading.Condition()
        self._threads = [
            threading.Thread(target=self._run, name=f"poller-{mapping.queue}-{n}", daemon=True)
            for n in range(max(1, concurrency))
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def request_stop(self, *, abandon_receives: bool = False) -> None:
        """Stop polling. ``abandon_receives``: ``join`` then waits only for the batches being
        processed; a poller still in its long poll is left to end on its own and hands nothing
        over (for a stack whose moto stops with it: what such a poll received would come back
        after the visibility timeout, and nobody reads that queue again)."""
        with self._idle:
            self._abandoning = abandon_receives
            self._stop.set()

    @property
    def polling(self) -> bool:
        """Whether any poller thread still runs (an abandoned one, until its long poll ends)."""
        return any(thread.is_alive() for thread in self._threads)

    def join(self) -> None:
        if not self._abandoning:
            for thread in self._threads:
                thread.join()
            return
        with self._idle:
            self._idle.wait_for(lambda: self._busy == 0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._receive()
                if batch and self._begin():
                    try:
                        self.process(batch)
                    finally:
                        self._end()
            except Exception:
                # A poller never dies: log and keep polling, like the Lambda service does.
                if not self._stop.is_set():
                    traceback.print_exc(file=sys.stderr)
                    self._stop.wait(1)

    def _begin(self) -> bool:
        """Count a batch as being processed; False once a stop that abandons receives may be under way."""
        with self._idle:
            if self._stop.is_set() and self._abandoning:
                return False
            self._busy += 1
            return True

    def _end(self) -> None:
        with self._idle:
            self._busy -= 1
            self._idle.notify_all()

    def _receive(self) -> list[MessageTypeDef]:
        """Up to BatchSize messages, waiting at most the batching window after the first one."""
        messages: list[MessageTypeDef] = []
        deadline: float | None = None
        while len(messages) < self.mapping.batch_size and not self._stop.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            wait = self._long_poll if remaining is None else min(self._long_poll, int(remaining))
            request: dict[str, Any] = {
                "QueueUrl": self.mapping.queue_url,
                "MaxNumberOfMessages": min(SQS_MAX_RECEIVE, self.mapping.batch_size - len(messages)),
                "WaitTimeSeconds": wait,
                "MessageSystemAttributeNames": ["All"],
                "MessageAttributeNames": ["All"],
            }
            if self._visibility_timeout is not None:
                request["VisibilityTimeout"] = self._visibility_timeout
            received = self._sqs.receive_message(**request).get("Messages", [])
            messages.extend(received)
            if deadline is None and messages:
                deadline = time.monotonic() + self.mapping.batching_window_seconds
            if deadline is None and not received:
                return []
            if not received and wait == 0:
                # Inside a sub-second window: pause briefly instead of spinning on moto.
                self._stop.wait(min(0.05, max(0.0, deadline - time.monotonic() if deadline else 0.0)))
        return messages

    def event(self, messages: list[MessageTypeDef]) -> dict[str, Any]:
        """The SQS event Lambda would build for this batch."""
        return {
            "Records": [
                {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": message.get("Body", ""),
                    "attributes": dict(message.get("Attributes", {})),
                    "messageAttributes": {
                        name: {
                            "stringValue": value.get("StringValue"),
                            "binaryValue": value.get("BinaryValue"),
                            "stringListValues": [],
                            "binaryListValues": [],
                            "dataType": value.get("DataType"),
                        }
                        for name, value in message.get("MessageAttributes", {}).items()
                    },
                    "md5OfBody": message.get("MD5OfBody", ""),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.mapping.queue_arn,
                    "awsRegion": self._region,
                }
                for message in messages
            ]
        }

    def process(self, messages: list[MessageTypeDef]) -> None:
        """Invoke the function on one batch and acknowledge what it did not report as failed."""
        try:
            result = self._function.invoke(self.event(messages))
        except Exception:
            # The whole batch failed: nothing is deleted, all of it comes back.
            traceback.print_exc(file=sys.stderr)
            return
        failed = self._failed_ids(result, {message["MessageId"] for message in messages})
        done = [message for message in messages if message["MessageId"] not in failed]
        for start in range(0, len(done), SQS_MAX_RECEIVE):
            chunk = done[start : start + SQS_MAX_RECEIVE]
            self._sqs.delete_message_batch(
                QueueUrl=self.mapping.queue_url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(chunk)],
            )

    def _failed_ids(self, result: Any, batch_ids: set[str]) -> set[str]:
        if not self.mapping.reports_batch_item_failures or not isinstance(result, dict):
            return set()
        failures = result.get("batchItemFailures") or []
        ids = {str(item.get("itemIdentifier") or "") for item in failures if isinstance(item, dict)}
        if len(ids) != len(failures) or not ids <= batch_ids:
            # Lambda treats a malformed or unknown identifier as the failure of the whole batch.
            return batch_ids
        return ids
