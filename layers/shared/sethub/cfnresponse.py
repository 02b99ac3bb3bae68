"""The answer a CloudFormation custom resource owes: one PUT of a JSON document to ``ResponseURL``.

CloudFormation waits (up to an hour) until the function answers, so every outcome, failures
included, must reach ``send``. The ``ResponseURL`` is a pre-signed S3 URL: no credentials.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Literal

TIMEOUT_SECONDS = 30
MAX_REASON_CHARS = 1000

Status = Literal["SUCCESS", "FAILED"]
Opener = Callable[[urllib.request.Request, float], Any]


def _open(request: urllib.request.Request, timeout: float) -> Any:
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - CloudFormation's https URL


def body(
    event: Mapping[str, Any],
    status: Status,
    *,
    physical_id: str,
    reason: str = "",
    data: Mapping[str, str] | None = None,
) -> bytes:
    document = {
        "Status": status,
        "Reason": (reason or status)[:MAX_REASON_CHARS],
        "PhysicalResourceId": physical_id,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "NoEcho": False,
        "Data": dict(data or {}),
    }
    return json.dumps(document).encode()


def send(
    event: Mapping[str, Any],
    status: Status,
    *,
    physical_id: str,
    reason: str = "",
    data: Mapping[str, str] | None = None,
    opener: Opener = _open,
) -> None:
    url = str(event["ResponseURL"])
    if not url.startswith(("https://", "http://")):
        raise ValueError("ResponseURL must be an http(s) URL")
    payload = body(event, status, physical_id=physical_id, reason=reason, data=data)
    # S3 signs the URL without a content type: send none (an empty one).
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=payload,
        method="PUT",
        headers={"Content-Type": "", "Content-Length": str(len(payload))},
    )
    with opener(request, TIMEOUT_SECONDS) as response:
        response.read()


__all__ = ["body", "send"]
