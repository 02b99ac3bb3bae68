"""devstack.awsgate's HTTP: what an SDK's connection to a function's endpoint sees, and what
the embedded AWS behind it is sent (a scripted upstream on 127.0.0.1 stands in for moto)."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import pytest

from devstack.awsgate import AuthorizingEndpoint
from devstack.iam import Policy, statements_of

SCOPE = "Credential=AKID/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0"
TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/hub"


@dataclass
class Upstream:
    """A scripted embedded AWS: answers each request with the next reply, records what it got."""

    replies: list[bytes]
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    server: socketserver.ThreadingTCPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    scripted = Upstream(replies=[])

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            scripted.connections += 1
            while head := self._head():
                length = next(
                    (int(line.split(b":")[1]) for line in head if line.lower().startswith(b"content-length")),
                    0,
                )
                scripted.requests.append(b"".join(head) + b"\r\n" + self.rfile.read(length))
                reply = scripted.replies.pop(0)
                self.wfile.write(reply)
                if b"Connection: close" in reply or b"HTTP/1.0" in reply.split(b"\r\n")[0]:
                    return

        def _head(self) -> list[bytes]:
            lines = []
            while (line := self.rfile.readline()) not in (b"\r\n", b""):
                lines.append(line)
            return lines

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    scripted.server = server
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield scripted
    server.shutdown()
    server.server_close()


@pytest.fixture
def endpoint(upstream: Upstream) -> Iterator[AuthorizingEndpoint]:
    allow_get = {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": TABLE}
    policy = Policy("FnRole", tuple(statements_of({"Statement": [allow_get]})))
    with AuthorizingEndpoint(policy, upstream.url, function_name="Fn") as started:
        yield started


def request(operation: str, body: bytes, *extra: str) -> bytes:
    head = [
        "POST / HTTP/1.1",
        "Host: dynamodb",
        f"Authorization: AWS4-HMAC-SHA256 {SCOPE}",
        f"X-Amz-Target: DynamoDB_20120810.{operation}",
        "Content-Type: application/x-amz-json-1.0",
        *extra,
    ]
    if not any(line.lower().startswith("transfer-encoding") for line in extra):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


GET_ITEM = json.dumps({"TableName": "hub", "Key": {"pk": {"S": "a"}}}).encode()


def read_reply(stream: BinaryIO) -> tuple[str, dict[str, str], bytes]:
    status = stream.readline().decode().rstrip("\r\n")
    headers = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.lower()] = value.strip()
    return status, headers, stream.read(int(headers.get("content-length", 0)))


def ok(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", "Content-Type: application/x-amz-json-1.0", *extra]
    if not any(line.lower().startswith(("transfer-encoding", "content-length")) for line in extra):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def connect(endpoint: AuthorizingEndpoint) -> tuple[socket.socket, BinaryIO]:
    port = int(endpoint.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock, sock.makefile("rb")


def test_one_connection_carries_many_calls_and_moto_keeps_its_connection(endpoint, upstream) -> None:
    upstream.replies = [ok(b'{"Item": {}}', "x-amzn-RequestId: r1"), ok(b"{}", "x-amzn-RequestId: r2")]
    sock, stream = connect(endpoint)
    with sock:
        sock.sendall(request("GetItem", GET_ITEM) + request("GetItem", GET_ITEM))
        first, second = read_reply(stream), read_reply(stream)
    assert first == ("HTTP/1.1 200 OK", first[1], b'{"Item": {}}')
    assert first[1]["x-amzn-requestid"] == "r1"
    assert second[1]["x-amzn-requestid"] == "r2"
    assert second[2] == b"{}"
    assert upstream.connections == 1
    # The body reached moto intact, framed by its length.
    assert upstream.requests[0].endswith(b"\r\n\r\n" + GET_ITEM)
    assert f"content-length: {len(GET_ITEM)}".encode() in upstream.requests[0].lower()


def test_a_chunked_request_reaches_moto_whole_and_a_chunked_reply_comes_back_whole(
    endpoint, upstream
) -> None:
    upstream.replies = [ok(b'5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n', "Transfer-Encoding: chunked")]
    chunked = b"".join(
        f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (GET_ITEM[:10], GET_ITEM[10:])
    )
    sock, stream = connect(endpoint)
    with sock:
        sock.sendall(request("GetItem", chunked + b"0\r\n\r\n", "Transfer-Encoding: chunked"))
        status, headers, body = read_reply(stream)
    assert status == "HTTP/1.1 200 OK"
    assert body == b'{"a":1}'
    assert "transfer-encoding" not in headers
    assert upstream.requests[0].endswith(b"\r\n\r\n" + GET_ITEM)


def test_a_reply_without_length_is_read_to_moto_closing(endpoint, upstream) -> None:
    upstream.replies = [b"HTTP/1.0 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n\r\n{}", ok(b"{}")]
    sock, stream = connect(endpoint)
    with sock:
        sock.sendall(request("GetItem", GET_ITEM))
        assert read_reply(stream)[2] == b"{}"
        sock.sendall(request("GetItem", GET_ITEM))
        assert read_reply(stream)[2] == b"{}"
    assert upstream.connections == 2  # a closed connection is not reused


def test_a_refused_call_never_reaches_moto(endpoint, upstream) -> None:
    sock, stream = connect(endpoint)
    with sock:
        sock.sendall(request("DeleteItem", GET_ITEM))
        status, _headers, body = read_reply(stream)
    assert status == "HTTP/1.1 400 Bad Request"
    assert json.loads(body)["__type"] == "AccessDeniedException"
    assert upstream.requests == []


def test_connection_close_is_honoured(endpoint, upstream) -> None:
    upstream.replies = [ok(b"{}")]
    sock, stream = connect(endpoint)
    with sock:
        sock.sendall(request("GetItem", GET_ITEM, "Connection: close"))
        status, headers, _ = read_reply(stream)
        assert status == "HTTP/1.1 200 OK"
        assert headers["connection"] == "close"
        assert stream.read() == b""


@pytest.mark.parametrize(
    "raw",
    [
        b"POST /\r\n\r\n",
        b"POST / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: many\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST / HTTP/1.1\r\n" + b"X-A: b\r\n" * 101 + b"\r\n",
    ],
)
def test_a_malformed_request_gets_a_400_with_a_reason_and_the_connection_closes(
    endpoint, upstream, raw
) -> None:
    sock, stream = connect(endpoint)
    with sock:
        sock.sendall(raw)
        status, headers, body = read_reply(stream)
        assert status == "HTTP/1.1 400 Bad Request"
        assert headers["connection"] == "close"
        assert body.count(b"\n") == 1
        assert len(body) > 5
        assert stream.read() == b""
    assert upstream.requests == []


def test_moto_unreachable_is_a_502(upstream) -> None:
    allow = {"Effect": "Allow", "Action": "*", "Resource": "*"}
    policy = Policy("FnRole", tuple(statements_of({"Statement": [allow]})))
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there any more
    with AuthorizingEndpoint(policy, f"http://127.0.0.1:{port}", function_name="Fn") as gate:
        sock, stream = connect(gate)
        with sock:
            sock.sendall(request("GetItem", GET_ITEM))
            status, _, body = read_reply(stream)
    assert status.startswith("HTTP/1.1 502")
    assert b"could not reach the embedded AWS" in body


def test_stop_returns_with_a_client_still_connected_and_the_port_closes(upstream) -> None:
    policy = Policy("FnRole", ())
    gate = AuthorizingEndpoint(policy, upstream.url, function_name="Fn").start()
    sock, _ = connect(gate)  # an SDK's idle keep-alive connection
    with sock:
        gate.stop()
        gate.stop()  # twice is harmless
        with pytest.raises(ConnectionRefusedError):
            connect(gate)
