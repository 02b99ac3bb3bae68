"""Sending to SQS in batches, retrying the entries SQS refused.

``SendMessageBatch`` can succeed as a call and still fail some entries (throttling,
an internal error): those are sent again a few times, and if some still fail the
caller gets ``UpstreamError``. Nothing in sethub may report "accepted" for a message
that did not reach its queue.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from sethub.errors import UpstreamError, aws_error_code
from sethub.retry import SQS_MAX_DELAY_SECONDS

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)

SQS_MAX_MESSAGE_BYTES = 1024 * 1024
"""The largest message SQS takes (template.yaml sets every queue's ``MaximumMessageSize``
to it). The largest message sethub writes, a retry of a 256 KiB event carrying its JWS
base64-encoded (about 470 KB), or a shard carrying both formats (about 720 KB), fits."""
BATCH_MAX_ENTRIES = 10
BATCH_MAX_BYTES = SQS_MAX_MESSAGE_BYTES
"""SQS caps the sum of a batch's bodies like a single message."""
SEND_ROUNDS = 3
"""Attempts for an entry SQS refused, before giving up on it."""


@dataclass(frozen=True)
class Outgoing:
    """One message to send: its body and how long SQS should hold it (capped at 900 s)."""

    body: str
    delay_seconds: int = 0


class QueueSender:
    """Batched ``SendMessageBatch`` with partial-failure retries."""

    def __init__(self, sqs_client: SQSClient, *, rounds: int = SEND_ROUNDS) -> None:
        self._sqs = sqs_client
        self._rounds = rounds

    def send(self, queue_url: str, messages: Sequence[Outgoing]) -> None:
        """Send every message or raise ``UpstreamError`` naming how many did not go."""
        failed = self.send_all(queue_url, messages)
        if failed:
            raise UpstreamError(f"SQS refused {len(failed)} of {len(messages)} messages")

    def send_all(self, queue_url: str, messages: Sequence[Outgoing]) -> list[int]:
        """Send what SQS takes; returns the indices of the messages that still failed."""
        if not messages:
            return []
        if not queue_url:
            raise UpstreamError("queue URL is not configured")
        # A message over the limit would be refused on every round: report it unsent.
        failed = [index for index, message in enumerate(messages) if _size(message) > SQS_MAX_MESSAGE_BYTES]
        if failed:
            logger.warning(
                "%d messages are over the SQS limit of %d bytes", len(failed), SQS_MAX_MESSAGE_BYTES
            )
        too_big = set(failed)
        sendable = [index for index in range(len(messages)) if index not in too_big]
        for offset, chunk in _chunks([messages[index] for index in sendable]):
            failed.extend(sendable[offset + index] for index in self._send_chunk(queue_url, chunk))
        return sorted(failed)

    def _send_chunk(self, queue_url: str, chunk: list[Outgoing]) -> list[int]:
        pending = {str(index): message for index, message in enumerate(chunk)}
        for _ in range(self._rounds):
            entries: Any = [
                {
                    "Id": entry_id,
                    "MessageBody": message.body,
                    "DelaySeconds": min(max(message.delay_seconds, 0), SQS_MAX_DELAY_SECONDS),
                }
                for entry_id, message in pending.items()
            ]
            try:
                response = self._sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                logger.warning("SQS SendMessageBatch failed: %s", aws_error_code(exc))
                continue
            for success in response.get("Successful", []):
                pending.pop(success["Id"], None)
            failures = response.get("Failed", [])
            if failures:
                logger.warning("SQS refused %d entries: %s", len(failures), failures[0].get("Code", "error"))
            # A sender fault (a message SQS will never accept) is not worth resending.
            if not pending or any(failure.get("SenderFault") for failure in failures):
                break
        return [int(entry_id) for entry_id in pending]


def _size(message: Outgoing) -> int:
    return len(message.body.encode("utf-8"))


def _chunks(messages: Sequence[Outgoing]) -> Iterator[tuple[int, list[Outgoing]]]:
    """Batches of at most 10 entries and 1 MiB, each with the index of its first message."""
    chunk: list[Outgoing] = []
    start = size = 0
    for index, message in enumerate(messages):
        length = _size(message)
        if chunk and (len(chunk) == BATCH_MAX_ENTRIES or size + length > BATCH_MAX_BYTES):
            yield start, chunk
            chunk, start, size = [], index, 0
        chunk.append(message)
        size += length
    if chunk:
        yield start, chunk


__all__ = ["BATCH_MAX_BYTES", "BATCH_MAX_ENTRIES", "SQS_MAX_MESSAGE_BYTES", "Outgoing", "QueueSender"]
