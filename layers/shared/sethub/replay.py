"""Dead-lettered deliveries back onto the retry queue (``sethub dead-letters replay``), and a
look at what a dead-letter queue holds (``sethub dead-letters list``).

``replay`` reads the dead-letter queue and sends each record to the retry queue with its
attempts reset, so it gets the whole retry schedule again. A record is deleted from the
dead-letter queue only after its re-send succeeded; a message that is not a delivery
record is left where it is. ``dry_run`` lists what would move, changing nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from sethub.errors import UpstreamError
from sethub.hygiene import callback_label
from sethub.messages import DeliveryRetry, MessageFormatError, parse_message

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

RECEIVE_BATCH = 10
VISIBILITY_SECONDS = 60
"""How long a record being replayed stays invisible to other readers of the queue."""


@dataclass
class ReplayReport:
    moved: int = 0
    skipped: int = 0
    """Messages that are not delivery records (left on the dead-letter queue)."""


def replay(
    sqs: SQSClient,
    *,
    source_url: str,
    target_url: str,
    limit: int | None = None,
    dry_run: bool = False,
    out: TextIO | None = None,
) -> ReplayReport:
    """Move up to ``limit`` dead-lettered deliveries from ``source_url`` to ``target_url``."""
    report = ReplayReport()
    seen: set[str] = set()
    listed: list[str] = []
    while limit is None or report.moved < limit:
        wanted = RECEIVE_BATCH if limit is None else min(RECEIVE_BATCH, limit - report.moved)
        try:
            response = sqs.receive_message(
                QueueUrl=source_url,
                MaxNumberOfMessages=wanted,
                VisibilityTimeout=VISIBILITY_SECONDS,
                WaitTimeSeconds=0,
            )
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(f"SQS ReceiveMessage failed: {type(exc).__name__}") from exc
        messages = [m for m in response.get("Messages", []) if m["MessageId"] not in seen]
        if not messages:
            break
        for message in messages:
            seen.add(message["MessageId"])
            try:
                record = parse_message(message["Body"])
            except MessageFormatError:
                record = None
            if not isinstance(record, DeliveryRetry):
                report.skipped += 1
                continue
            if out is not None:
                # The callback by host and subscription id: its URL may carry a token.
                target = callback_label(record.topic, record.callback)
                print(f"{'would move' if dry_run else 'moving'} {record.jti} -> {target}", file=out)
            if dry_run:
                listed.append(message["ReceiptHandle"])
            else:
                fresh = replace(record, attempts=0, not_before=0.0)
                try:
                    sqs.send_message(QueueUrl=target_url, MessageBody=fresh.to_json())
                    # Only now: a failed send leaves the record on the dead-letter queue.
                    sqs.delete_message(QueueUrl=source_url, ReceiptHandle=message["ReceiptHandle"])
                except (ClientError, BotoCoreError) as exc:
                    raise UpstreamError(f"SQS could not move a record: {type(exc).__name__}") from exc
            report.moved += 1
    for receipt_handle in listed:
        _show_again(sqs, source_url, receipt_handle)
    return report


@dataclass(frozen=True)
class DeadLetter:
    """A dead-lettered message as an operator sees it: never the callback URL or the body."""

    message_id: str
    kind: str
    """The message kind (``retry``: a delivery; ``set``, ``content``: an event; ...), else ``other``."""
    jti: str = ""
    topic: str = ""
    callback: str = ""
    """Host and subscription id: the URL's path or query may carry a token."""
    attempts: int = 0
    last_error: str = ""


def peek(sqs: SQSClient, queue_url: str, *, limit: int = RECEIVE_BATCH) -> list[DeadLetter]:
    """Up to ``limit`` messages of a dead-letter queue, left on it (visible again at once)."""
    found: list[DeadLetter] = []
    handles: list[str] = []
    seen: set[str] = set()
    try:
        while len(found) < limit:
            response = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=min(RECEIVE_BATCH, limit - len(found)),
                VisibilityTimeout=VISIBILITY_SECONDS,
                WaitTimeSeconds=0,
            )
            messages = [m for m in response.get("Messages", []) if m["MessageId"] not in seen]
            if not messages:
                break
            for message in messages:
                seen.add(message["MessageId"])
                handles.append(message["ReceiptHandle"])
                found.append(_dead_letter(message["MessageId"], message["Body"]))
    except (ClientError, BotoCoreError) as exc:
        raise UpstreamError(f"SQS ReceiveMessage failed: {type(exc).__name__}") from exc
    finally:
        for receipt_handle in handles:
            _show_again(sqs, queue_url, receipt_handle)
    return found


def _dead_letter(message_id: str, body: str) -> DeadLetter:
    try:
        record = parse_message(body)
    except MessageFormatError:
        return DeadLetter(message_id, "other")
    topic = str(getattr(record, "topic", ""))
    callback = str(getattr(record, "callback", ""))
    return DeadLetter(
        message_id,
        str(getattr(record, "kind", "other")),
        jti=str(getattr(record, "jti", "")),
        topic=topic,
        callback=callback_label(topic, callback) if callback else "",
        attempts=int(getattr(record, "attempts", 0)),
        last_error=" ".join(str(getattr(record, "last_error", "")).split()),
    )


def _show_again(sqs: SQSClient, queue_url: str, receipt_handle: str) -> None:
    """A dry run leaves the queue as it found it: the record is visible again at once."""
    # If this fails, the record becomes visible again after VISIBILITY_SECONDS anyway.
    with contextlib.suppress(ClientError, BotoCoreError):
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=0)
