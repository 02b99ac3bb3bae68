"""devstack.motoserver: the local stack's embedded AWS, in a process of its own.

It answers AWS calls once ``start`` returns, keeps each client's connection for the next
call, refuses a busy port at start, and goes away with the stack: when stopped, and when
the stack is killed without a chance to stop it.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from devstack.motoserver import EmbeddedAwsError, MotoProcess

SQS_AUTH = (
    "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0"
)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoProcess]:
    started = MotoProcess("127.0.0.1", 0)
    started.start()
    yield started
    started.stop()


def _answers(endpoint: str) -> bool:
    parts = urlsplit(endpoint)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=2):
            return True
    except OSError:
        return False


def _wait_until(condition: Any, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.05)


def _list_queues(connection: http.client.HTTPConnection, **headers: str) -> http.client.HTTPResponse:
    body = b"Action=ListQueues&Version=2012-11-05"
    connection.request(
        "POST",
        "/",
        body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": SQS_AUTH, **headers},
    )
    return connection.getresponse()


def test_it_answers_aws_calls_with_the_stacks_moto_behaviour(moto: MotoProcess) -> None:
    sqs = boto3.client(
        "sqs",
        endpoint_url=moto.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    url = sqs.create_queue(QueueName="motoserver-events")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    received = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert [message["Body"] for message in received] == ["hello"]


def test_a_client_keeps_its_connection_across_calls(moto: MotoProcess) -> None:
    parts = urlsplit(moto.endpoint)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        first = _list_queues(connection)
        first.read()
        assert first.status == 200
        assert first.getheader("Connection") is None
        sock = connection.sock
        # WHEN a second call goes on the same connection, THEN it is answered on it
        second = _list_queues(connection)
        assert second.status == 200
        assert b"ListQueues" in second.read()
        assert connection.sock is sock
    finally:
        connection.close()


def test_a_chunked_request_is_answered_and_its_connection_closed(moto: MotoProcess) -> None:
    parts = urlsplit(moto.endpoint)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request(
            "POST",
            "/",
            body=iter([b"Action=ListQueues", b"&Version=2012-11-05"]),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": SQS_AUTH},
            encode_chunked=True,
        )
        answer = connection.getresponse()
        assert answer.status == 200
        assert b"ListQueues" in answer.read()
        assert answer.getheader("Connection") == "close"
    finally:
        connection.close()


def test_a_client_that_asks_to_close_gets_its_connection_closed(moto: MotoProcess) -> None:
    parts = urlsplit(moto.endpoint)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        answer = _list_queues(connection, Connection="close")
        assert answer.status == 200
        answer.read()
        assert answer.getheader("Connection") == "close"
    finally:
        connection.close()


def _raw_exchange(endpoint: str, request: bytes) -> bytes:
    """Everything the server sends back until it closes the connection."""
    parts = urlsplit(endpoint)
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_an_http_1_0_client_is_answered_and_its_connection_closed(moto: MotoProcess) -> None:
    body = b"Action=ListQueues&Version=2012-11-05"
    answer = _raw_exchange(
        moto.endpoint,
        b"POST / HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        + f"Authorization: {SQS_AUTH}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body,
    )
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"ListQueues" in answer


def test_a_malformed_request_line_is_a_400_and_the_connection_closed(moto: MotoProcess) -> None:
    answer = _raw_exchange(moto.endpoint, b"NONSENSE\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")


def test_a_busy_port_is_refused_at_start() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(EmbeddedAwsError, match=f"did not start on 127.0.0.1:{port}"):
            MotoProcess("127.0.0.1", port).start()


def test_it_stops_with_the_stack() -> None:
    moto = MotoProcess("127.0.0.1", 0)
    endpoint = moto.start()
    assert _answers(endpoint)
    moto.stop()
    _wait_until(lambda: not _answers(endpoint), 10, "the embedded AWS still answers after stop")


def test_it_exits_when_the_stack_is_killed() -> None:
    # GIVEN a stack process that started its embedded AWS
    stack = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys, threading
                from devstack.motoserver import MotoProcess
                print(MotoProcess("127.0.0.1", 0).start(), flush=True)
                threading.Event().wait()
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert stack.stdout is not None
        endpoint = stack.stdout.readline().strip()
        assert _answers(endpoint)
    finally:
        # WHEN the stack is killed (no clean-up at all)
        stack.kill()
        stack.wait()
    # THEN its embedded AWS goes away too
    _wait_until(lambda: not _answers(endpoint), 20, "the embedded AWS outlived its killed stack")
