"""The exceptions sethub raises, one tree.

    SethubError
    ├── ConfigurationError      a setting is missing or malformed
    ├── BadRequestError         the caller sent something we refuse (4xx); ``status`` says which
    │   ├── UnauthorizedError   no API key (401)
    │   ├── ForbiddenError      a wrong API key (403)
    │   ├── NotFoundError       an unknown topic (404)
    │   └── PayloadTooLargeError  a body over its limit (413)
    ├── BlockedAddressError     the network guard refused a URL or an address
    ├── OutboundError           an outbound request could not complete (refused, TLS, ...)
    │   └── OutboundTimeoutError  ... because it ran out of time
    └── UpstreamError           an AWS call failed after its retries (5xx to callers)

Every message is one line a user can act on, and never contains a secret.
``aws_error_code`` names a failed AWS call in such a message.
"""

from __future__ import annotations

from botocore.exceptions import ClientError


class SethubError(Exception):
    """Base class of every error sethub raises on purpose."""


class ConfigurationError(SethubError):
    """A setting is missing or malformed."""


class BadRequestError(SethubError):
    """The request is refused; ``status`` is the HTTP status to answer with."""

    status = 400

    def __init__(self, reason: str, *, problems: list[dict[str, object]] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.problems = problems or []


class UnauthorizedError(BadRequestError):
    """No API key was presented."""

    status = 401


class ForbiddenError(BadRequestError):
    """The API key presented is not the hub's."""

    status = 403


class NotFoundError(BadRequestError):
    """The topic (or other named thing) does not exist."""

    status = 404


class PayloadTooLargeError(BadRequestError):
    """A body is over its documented limit."""

    status = 413


class BlockedAddressError(SethubError):
    """The network guard refused a URL: bad scheme, or a host resolving to a forbidden address."""


class OutboundError(SethubError):
    """An outbound HTTP request could not complete: connection refused, timeout, TLS failure."""


class OutboundTimeoutError(OutboundError):
    """An outbound HTTP request ran out of time (connect or response)."""


class UpstreamError(SethubError):
    """An AWS service call failed after its own retries."""


def aws_error_code(exc: BaseException) -> str:
    """A ClientError's AWS error code (else the class name), never its message: it can echo the request."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__
