"""A stand-in for CloudFormation's pre-signed response URL: records each custom resource answer."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Responses:
    def __init__(self, url: str) -> None:
        self.url = url
        self.received: list[dict[str, Any]] = []

    def event(self, kind: str, properties: dict[str, str], physical_id: str | None = None) -> dict[str, Any]:
        """A CloudFormation custom resource request answering to this server."""
        event: dict[str, Any] = {
            "RequestType": kind,
            "ResponseURL": f"{self.url}/response/{uuid.uuid4().hex}",
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/hub/1",
            "RequestId": uuid.uuid4().hex,
            "ResourceType": "Custom::SigningKeyRing",
            "LogicalResourceId": "SigningKeyRing",
            "ResourceProperties": {
                "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:f",
                **properties,
            },
        }
        if physical_id is not None:
            event["PhysicalResourceId"] = physical_id
        return event


@contextmanager
def cfn_responses() -> Iterator[Responses]:
    responses: Responses

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            responses.received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    responses = Responses(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield responses
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
