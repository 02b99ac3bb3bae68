"""What each function is invoked with in ``bench.emulator``, and the AWS it reaches there.

Each function is invoked twice with the same event, one it can receive (``bench_events``):
where the function has one, an event it answers without any AWS call (``GET /health``, an
SSF request without a token, an empty SQS batch, a CloudFormation Delete); else the nearest
event it receives in AWS, whose AWS calls then count as they do there: a key the hub does
not hold (ingest and the authorizer get no request without a key: API Gateway refuses those
itself) is looked up once, and dispatch's first batch counts the SSF streams (a DynamoDB Query).

There is no AWS in the emulator: a call the containers made to AWS's own endpoints failed
to connect and botocore retried it with backoff (dispatch's count took ~4.8 s so, 9
attempts), which a row then showed as init. So the bench serves moto (``LocalAws``) on
Docker's bridge address, the address the containers reach this machine by, and points every
function at it (the template's ``LocalAwsEndpoint`` declares ``AWS_ENDPOINT_URL``): the
tables of the template exist there (empty), and the custom resource's answer goes to a
bucket there, as it goes to S3 in AWS. Every request moto answers is recorded
(``call_name``), so each row says which AWS calls its invokes made.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3

REGION = "us-east-1"
"""sam local's default region: the containers' AWS_REGION, where the bench's tables are."""
RESPONSE_BUCKET = "sethub-bench"
"""The bucket in moto that takes a custom resource's answer (CloudFormation's is in S3)."""
UNKNOWN_KEY = "shk" + "0" * 43
"""An API key of the hub's format that no hub holds (none is created in the bench's moto)."""
_CREDENTIAL = "bench"
"""moto's and the emulator's: any key is accepted."""

# SigV4: "Credential=<key>/<date>/<region>/<service>/aws4_request".
_SIGNED_SERVICE = re.compile(r"Credential=[^/,]*/[^/,]*/[^/,]*/([^/,]+)/aws4_request")


@dataclass(frozen=True)
class BenchEvent:
    """What a function is invoked with, twice: the payload and, for the row, what it is."""

    description: str
    payload: dict[str, Any]


def _rest_event(method: str, path: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A REST API (payload 1.0) proxy event, as API Gateway sends it to the function."""
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": dict(headers or {}),
        "multiValueHeaders": {name: [value] for name, value in (headers or {}).items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": f"/Prod{path}",
            "stage": "Prod",
            "requestId": "bench",
            "domainName": "bench.execute-api.us-east-1.amazonaws.com",
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": None,
        "isBase64Encoded": False,
    }


def bench_events(aws_endpoint: str) -> dict[str, BenchEvent]:
    """Each function's bench event, by logical id; ``aws_endpoint`` is moto's URL as the
    containers reach it (the custom resource answers to a bucket there)."""
    empty_batch = BenchEvent("an empty SQS batch", {"Records": []})
    return {
        # API Gateway refuses a request without a key itself (the usage plan's key on the REST
        # API, the authorizer's identity source on the HTTP API): a key this hub does not hold
        # is the nearest request that reaches these two, looked up once (GetItem), as in AWS.
        "IngestFunction": BenchEvent(
            "POST /events with an API key the hub does not hold (refused, 403)",
            _rest_event("POST", "/events", {"content-type": "application/json", "x-api-key": UNKNOWN_KEY}),
        ),
        "AuthorizerFunction": BenchEvent(
            "an HTTP API authorizer request with an API key the hub does not hold (denied)",
            {
                "version": "2.0",
                "type": "REQUEST",
                "routeArn": "arn:aws:execute-api:us-east-1:123456789012:bench/$default/POST/events",
                "identitySource": [UNKNOWN_KEY],
                "routeKey": "POST /events",
                "rawPath": "/events",
                "rawQueryString": "",
                "headers": {"content-type": "application/json", "x-api-key": UNKNOWN_KEY},
                "requestContext": {
                    "http": {"method": "POST", "path": "/events", "sourceIp": "127.0.0.1"},
                    "requestId": "bench",
                    "routeKey": "POST /events",
                    "stage": "$default",
                },
            },
        ),
        "WebSubFunction": BenchEvent("GET /health", _rest_event("GET", "/health")),
        "SsfFunction": BenchEvent(
            "GET /ssf/stream without a bearer token (refused, 401)", _rest_event("GET", "/ssf/stream")
        ),
        "VerifierFunction": empty_batch,
        # A container's first batch, an empty one too, counts the SSF streams (a Query).
        "DispatchFunction": empty_batch,
        # A Delete makes no AWS call; every request ends with the answer PUT to ResponseURL.
        "KeyRingFunction": BenchEvent(
            "a CloudFormation Delete of the key ring (its answer PUT to a bucket in moto)",
            {
                "RequestType": "Delete",
                "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:KeyRingFunction",
                "ResponseURL": f"{aws_endpoint}/{RESPONSE_BUCKET}/keyring-response",
                "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/sethub-bench/bench",
                "RequestId": "bench",
                "LogicalResourceId": "SigningKeyRing",
                "PhysicalResourceId": "HubTable/signing-key-ring",
                "ResourceType": "Custom::SigningKeyRing",
                "ResourceProperties": {
                    "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:KeyRingFunction",
                    "TableName": "HubTable",
                    "DataKeyId": "DataKey",
                    "KeySpec": "ECC_NIST_P256",
                },
            },
        ),
    }


def call_name(environ: Mapping[str, Any]) -> str:
    """One request to moto as ``service.Operation`` (``dynamodb.Query``), or as method, path
    and ``(unsigned)`` for a request without SigV4 (a pre-signed URL's PUT)."""
    signed = _SIGNED_SERVICE.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    method = str(environ.get("REQUEST_METHOD", ""))
    path = str(environ.get("PATH_INFO", ""))
    if signed is None:
        return f"{method} {path} (unsigned)"
    operation = target.rsplit(".", 1)[-1] if target else f"{method} {path}"
    return f"{signed.group(1)}.{operation}"


class LocalAws:
    """moto on ``host`` (any free port), recording every request it answers."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.endpoint = ""
        self._calls: list[str] = []
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Serve and return the endpoint URL."""
        from moto.moto_server.werkzeug_app import (  # noqa: PLC0415 - the bench process only
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server  # noqa: PLC0415

        # werkzeug logs every request at INFO: the bench's output is its table.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        app = DomainDispatcherApplication(create_backend_app)

        def recording(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            with self._lock:
                self._calls.append(call_name(environ))
            result: Iterable[bytes] = app(environ, start_response)
            return result

        self._server = make_server(self.host, 0, recording, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.endpoint = f"http://{self.host}:{self._server.server_address[1]}"
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def mark(self) -> int:
        """A position in the calls, for ``calls_since``."""
        with self._lock:
            return len(self._calls)

    def calls_since(self, mark: int) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._calls[mark:])

    def client(self, service: str) -> Any:
        return boto3.client(  # type: ignore[call-overload]  # a service by name
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=_CREDENTIAL,
            aws_secret_access_key=_CREDENTIAL,
        )

    def create_resources(self, template: Mapping[str, Any]) -> None:
        """The template's DynamoDB tables, named by logical id (what ``Ref`` gives under sam
        local), with their keys and indexes; and the bucket that takes custom resources' answers."""
        dynamodb = self.client("dynamodb")
        for name, resource in (template.get("Resources") or {}).items():
            if resource.get("Type") != "AWS::DynamoDB::Table":
                continue
            props = resource.get("Properties") or {}
            table: dict[str, Any] = {
                "TableName": name,
                "AttributeDefinitions": props["AttributeDefinitions"],
                "KeySchema": props["KeySchema"],
                "BillingMode": "PAY_PER_REQUEST",
            }
            if props.get("GlobalSecondaryIndexes"):
                table["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
            dynamodb.create_table(**table)
        # CloudFormation's pre-signed URL lets its holder write without credentials; moto
        # refuses an unsigned overwrite of a private bucket's object (the warm invoke's answer).
        self.client("s3").create_bucket(Bucket=RESPONSE_BUCKET, ACL="public-read-write")
