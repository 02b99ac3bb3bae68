"""One function's container: ``python -m devstack.worker`` serves the Lambda Invoke API.

Lambda runs each function in containers of its own, with only that function's
environment (and role). The local stack does the same with one worker process per
function: the process gets exactly the function's environment, imports its handler the
way the runtime does (the code folder first on ``sys.path``) and answers
``POST /2015-03-31/functions/<name>/invocations`` like ``sam local start-lambda``, so the
API and the queue pollers invoke functions the same way in both modes (devstack.invoke).
Like a Lambda container it runs one invocation at a time (handlers and Powertools keep
per-invocation state in module globals); devstack.invoke starts more workers when all are busy.

It prints ``listening <port>`` on stdout once it can serve, and exits when its parent goes
away (its stdin closes), so a killed stack leaves no worker behind. Ctrl-C does not stop it:
the stack does, once its pollers' running batches have finished.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
import warnings
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from devstack.functions import FunctionLoadError, LocalFunction, load_function
from devstack.lambdaspec import FunctionSpec

INVOKE_PATH = "/2015-03-31/functions/{name}/invocations"
READY_PREFIX = "listening "


def error_payload(exc: BaseException) -> dict[str, Any]:
    """An unhandled error the way the Python runtime reports it."""
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def _handler_class(function: LocalFunction) -> type[BaseHTTPRequestHandler]:
    path = INVOKE_PATH.format(name=function.spec.logical_id)

    # HTTP/1.0: the connection closes after each answer, so the next invocation (maybe from
    # another client) is accepted at once by this one-at-a-time server.
    class Handler(BaseHTTPRequestHandler):
        # The head and the body leave in two writes: no waiting on Nagle between them.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != path:
                self._answer(404, {"message": f"Function not found: {self.path}"}, error=None)
                return
            length = int(self.headers.get("Content-Length") or 0)
            event = json.loads(self.rfile.read(length) or b"{}")
            try:
                result = function.invoke(event)
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                self._answer(200, error_payload(exc), error="Unhandled")
                return
            self._answer(200, result, error=None)

        def _answer(self, status: int, payload: Any, error: str | None) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if error:
                self.send_header("X-Amz-Function-Error", error)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the API's access log and the function's own logs say enough

    return Handler


def _exit_with_parent() -> None:
    """Exit once stdin (a pipe from the stack) closes: the stack stopped or was killed."""
    sys.stdin.buffer.read()
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="the function's FunctionSpec as JSON")
    parser.add_argument("--root", type=Path, required=True, help="folder that CodeUri is relative to")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    spec = FunctionSpec(**json.loads(args.spec))
    # Ctrl-C reaches the whole process group: the stack stops its workers itself, after the
    # pollers' running batches have finished (which need their function).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Powertools warns on every invocation that published no metric (health checks): noise here.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    try:
        function = load_function(spec, args.root, region)
    except FunctionLoadError as exc:
        print(f"devstack worker: {exc}", file=sys.stderr, flush=True)
        return 1
    server = HTTPServer((args.host, args.port), _handler_class(function))
    threading.Thread(target=_exit_with_parent, name="parent-watch", daemon=True).start()
    print(f"{READY_PREFIX}{server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
