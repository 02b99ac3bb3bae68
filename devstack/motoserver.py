"""The local stack's embedded AWS in a process of its own: ``python -m devstack.motoserver``.

moto serves every AWS call of the stack: provisioning, the functions' calls (through their
role's endpoint, ``devstack.awsgate``) and the queue pollers' long polls. In the stack's own
process it shared one interpreter lock with the API, the role endpoints and the pollers, so
each of moto's requests waited for them and they for it; in a process of its own the two
halves run side by side on two cores.

The child applies ``lighten_moto``, ``atomic_dynamodb_writes`` and ``lighten_moto_hot_path``
before it serves, keeps its clients' connections (werkzeug's server closed each one after one
call), prints ``listening <port>`` on stdout once its socket listens (then writes only to
stderr, which is the stack's), ignores Ctrl-C (the stack stops it last, after the pollers'
batches have finished) and exits when its stdin closes: the stack stopped, or was killed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from devstack.httphead import HttpError, read_fields

if TYPE_CHECKING:
    from werkzeug.serving import WSGIRequestHandler

READY_PREFIX = "listening "
START_SECONDS = 60.0
"""How long the stack waits for its embedded AWS to answer (importing moto takes seconds
on a busy machine)."""
STOP_SECONDS = 5.0
_FRAMING_HEADERS = frozenset({"content-length", "connection", "transfer-encoding", "keep-alive"})


class EmbeddedAwsError(OSError):
    """The embedded AWS did not start (a busy ``MOTO_PORT``, a broken install)."""


class MotoProcess:
    """A ``python -m devstack.motoserver`` child; ``start`` returns its endpoint once it answers."""

    def __init__(self, host: str, port: int = 0, *, env: Mapping[str, str] | None = None) -> None:
        self.host = host
        self.port = port
        self._env = dict(os.environ if env is None else env)
        self._process: subprocess.Popen[bytes] | None = None
        self.endpoint = ""

    def start(self, timeout: float = START_SECONDS) -> str:
        deadline = time.monotonic() + timeout
        process = self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "devstack.motoserver", "--host", self.host, "--port", str(self.port)],
            env=self._env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert process.stdout is not None
        line = _readline(process.stdout, deadline - time.monotonic())
        if not line.startswith(READY_PREFIX):
            self.stop()
            raise EmbeddedAwsError(
                f"the embedded AWS did not start on {self.host}:{self.port} (exit {process.returncode};"
                " see its error in the log)"
            )
        self.endpoint = f"http://{self.host}:{int(line[len(READY_PREFIX) :])}"
        try:
            _wait_answering(self.endpoint, deadline)
        except EmbeddedAwsError:
            self.stop()
            raise
        return self.endpoint

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()  # it exits on its own
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _readline(stream: IO[bytes], timeout: float) -> str:
    """One line from ``stream``, or "" if none arrives within ``timeout`` seconds."""
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(max(0.0, timeout))
    return lines[0].decode(errors="replace").strip() if lines else ""


def _wait_answering(endpoint: str, deadline: float) -> None:
    """Until moto answers an HTTP request (any status), or ``EmbeddedAwsError`` at ``deadline``."""
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/", timeout=5) as response:  # noqa: S310 - our own http URL
                response.read()
            return
        except urllib.error.HTTPError:
            return  # an answer
        except OSError as exc:
            if time.monotonic() > deadline:
                raise EmbeddedAwsError(f"the embedded AWS at {endpoint} does not answer: {exc}") from exc
        time.sleep(0.05)


def _keep_alive_handler() -> type[WSGIRequestHandler]:
    """moto's request handler, answering on the connection the request came on.

    werkzeug's development server closes the connection after every answer (it cannot tell
    where a request's unread body ends), so each AWS call of the stack cost a new connection
    on both sides and a new thread here. This handler reads the whole body before moto sees
    the request, and sends the whole answer with its length, so the next request on the
    connection starts where this one ended.
    """
    from moto.moto_server.werkzeug_app import MotoRequestHandler  # noqa: PLC0415

    class KeepAliveHandler(MotoRequestHandler):
        protocol_version = "HTTP/1.1"
        # The head and the body leave in two writes: no waiting on Nagle between them.
        disable_nagle_algorithm = True

        def parse_request(self) -> bool:
            """The request line and headers, read by hand: http.server hands every header block
            to the email package, a fifth of moto's CPU per call here. HTTP/1.0 and 1.1 only."""
            self.command = None  # type: ignore[assignment]
            self.request_version = self.default_request_version
            self.close_connection = True
            self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
            words = self.requestline.split()
            if not words:
                return False
            if len(words) != 3 or words[2] not in ("HTTP/1.0", "HTTP/1.1"):
                self.request_version = "HTTP/1.0"  # so the error has a status line
                self.send_error(400, f"Bad request line {self.requestline[:80]!r}")
                return False
            self.command, path, self.request_version = words
            # As http.server: a path starting with // is not taken for a host.
            self.path = "/" + path.lstrip("/") if path.startswith("//") else path
            try:
                self.headers = _Headers(read_fields(self.rfile))  # type: ignore[assignment]
            except HttpError as exc:
                self.send_error(431, str(exc))
                return False
            connection = (self.headers.get("Connection") or "").lower()
            self.close_connection = connection == "close" or (
                self.request_version == "HTTP/1.0" and connection != "keep-alive"
            )
            return True

        def run_wsgi(self) -> None:
            if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            environ = self.make_environ()
            try:
                if environ.pop("wsgi.input_terminated", False):
                    body = environ["wsgi.input"].read()  # werkzeug's reader of a chunked body
                    self.close_connection = True  # its trailers, if any, are not read
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    if length < 0:
                        raise ValueError(length)
                    body = self.rfile.read(length)
            except (ValueError, OSError):
                self.close_connection = True
                self.send_error(400, "Bad request body")
                return
            # moto reads the body as one of this length (a chunked one too, now it is read).
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            status, headers, payload = self._call(environ)
            code = int(status.split(" ", 1)[0])
            self.send_response(code, status.partition(" ")[2])
            for name, value in headers:
                if name.lower() not in _FRAMING_HEADERS:
                    self.send_header(name, value)
            bodiless = 100 <= code < 200 or code in (204, 304)
            if not bodiless and self.command != "HEAD":
                self.send_header("Content-Length", str(len(payload)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if not bodiless and self.command != "HEAD":
                self.wfile.write(payload)

        def _call(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
            """The application's status, headers and whole body (a 500 if it raised)."""
            started: list[Any] = []
            written: list[bytes] = []

            def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                started[:] = [status, headers]
                return written.append

            try:
                result = self.server.app(environ, start_response)
                try:
                    written.extend(result)
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
                return started[0], started[1], b"".join(written)
            except Exception:
                traceback.print_exc(file=sys.stderr)
                self.close_connection = True
                return "500 Internal Server Error", [("Content-Type", "text/plain")], b"Internal error\n"

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass  # werkzeug's access log is off (WARNING) here: not even formatted

    return KeepAliveHandler


class _Headers:
    """A request's header fields in order, looked up by name whatever its case: what werkzeug's
    and moto's handlers read of ``http.server``'s parsed headers."""

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields)

    def keys(self) -> list[str]:
        return [name for name, _ in self._fields]

    def get(self, name: str, default: str | None = None) -> str | None:
        wanted = name.lower()
        return next((value for field, value in self._fields if field.lower() == wanted), default)


def _exit_with_parent() -> None:
    """Exit once stdin (a pipe from the stack) closes: the stack stopped or was killed."""
    sys.stdin.buffer.read()
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.motoserver", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    # The stack stops this process after its pollers; Ctrl-C reaches the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # moto logs every AWS call through werkzeug; the API's own access log is enough.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Imported here: the stack imports this module for MotoProcess and never runs moto itself.
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app  # noqa: PLC0415
    from werkzeug.serving import make_server  # noqa: PLC0415

    from devstack.motoatomic import atomic_dynamodb_writes  # noqa: PLC0415
    from devstack.motocost import lighten_moto  # noqa: PLC0415
    from devstack.motohotpath import lighten_moto_hot_path  # noqa: PLC0415

    # Without moto's unused RSA key per symmetric KMS key, and its per-request listdir;
    # its DynamoDB writes atomic, as DynamoDB's are; a Query reads its partition only.
    lighten_moto()
    atomic_dynamodb_writes()
    lighten_moto_hot_path()
    # As moto's ThreadedMotoServer serves, but bound here (a busy port fails at once) and
    # keeping its connections.
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(args.host, args.port, app, threaded=True, request_handler=_keep_alive_handler())
    threading.Thread(target=_exit_with_parent, name="parent-watch", daemon=True).start()
    print(f"{READY_PREFIX}{server.server_address[1]}", flush=True)
    # From here on, anything written to stdout goes where the stack's stderr goes.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    server.serve_forever()
    return 0


__all__ = ["EmbeddedAwsError", "MotoProcess"]


if __name__ == "__main__":
    sys.exit(main())
