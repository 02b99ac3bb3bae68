"""The SQS batch packer against SQS's 1 MiB message and batch limit (no AWS: a recording fake)."""

from __future__ import annotations

from typing import Any

from sethub.queues import BATCH_MAX_ENTRIES, SQS_MAX_MESSAGE_BYTES, Outgoing, QueueSender

KIB = 1024


class RecordingSqs:
    """Takes every entry, like SQS with room to spare, and remembers each batch."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.batches.append([entry["MessageBody"] for entry in Entries])
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries], "Failed": []}


def test_the_limit_is_the_message_size_every_queue_of_the_template_allows(template: dict[str, Any]) -> None:
    queues = {
        name: resource["Properties"].get("MaximumMessageSize")
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::SQS::Queue"
    }

    assert queues  # the template declares its queues
    assert queues == dict.fromkeys(queues, SQS_MAX_MESSAGE_BYTES)


def test_batches_are_filled_up_to_one_mebibyte_and_never_over() -> None:
    sqs = RecordingSqs()
    messages = [Outgoing(str(i) * (300 * KIB)) for i in range(7)]

    assert QueueSender(sqs).send_all("q", messages) == []  # type: ignore[arg-type]

    assert [len(batch) for batch in sqs.batches] == [3, 3, 1]
    assert all(sum(len(body) for body in batch) <= SQS_MAX_MESSAGE_BYTES for batch in sqs.batches)
    assert [body for batch in sqs.batches for body in batch] == [m.body for m in messages]


def test_small_messages_go_ten_to_a_batch() -> None:
    sqs = RecordingSqs()

    QueueSender(sqs).send_all("q", [Outgoing("m") for _ in range(25)])  # type: ignore[arg-type]

    assert [len(batch) for batch in sqs.batches] == [BATCH_MAX_ENTRIES, BATCH_MAX_ENTRIES, 5]


def test_a_message_at_the_limit_is_sent_and_one_over_is_reported_without_a_call() -> None:
    sqs = RecordingSqs()
    at_limit = Outgoing("a" * SQS_MAX_MESSAGE_BYTES)
    over = Outgoing("é" * (SQS_MAX_MESSAGE_BYTES // 2 + 1))  # counted in UTF-8 bytes, as SQS does
    small = Outgoing("b")

    failed = QueueSender(sqs).send_all("q", [small, over, at_limit])  # type: ignore[arg-type]

    assert failed == [1]
    assert sorted(body for batch in sqs.batches for body in batch) == sorted([small.body, at_limit.body])
