"""``python -m devstack`` (``make local``): the whole of sethub on this machine, in the foreground.

Options (also from the environment): ``--port`` (``PORT``, 3000), ``--moto-port``
(``MOTO_PORT``, a free one), ``--moto-endpoint URL --prefix P`` to attach to a moto server
that already holds a stack (its queues and their messages are reused).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from types import FrameType

from devstack.functions import FunctionLoadError
from devstack.intrinsics import IntrinsicError
from devstack.invoke import FunctionError
from devstack.provision import ProvisionError
from devstack.stack import LocalStack, StackConfig
from devstack.template import TemplateError


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help="API port (default $PORT or 3000)")
    parser.add_argument("--moto-port", type=int, help="port of the embedded moto server (default: free)")
    parser.add_argument("--moto-endpoint", help="use this running moto server instead of starting one")
    parser.add_argument("--prefix", help="resource name prefix (default sethub)")
    parser.add_argument("--template", type=Path, help="template path (default template.yaml)")
    parser.add_argument("--quiet", action="store_true", help="no access log")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    try:
        config = StackConfig.from_environ(
            os.environ,
            port=args.port,
            moto_port=args.moto_port,
            moto_endpoint=args.moto_endpoint,
            prefix=args.prefix,
            template_path=args.template,
            access_log=False if args.quiet else None,
        )
    except ValueError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 2
    # moto logs every AWS call through werkzeug; the API's own access log is enough.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Powertools warns on every invocation that published no metric (health checks): noise here.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    stack = LocalStack(config)
    try:
        stack.start()
    except (OSError, TemplateError, ProvisionError, IntrinsicError, FunctionLoadError, FunctionError) as exc:
        print(f"devstack: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        print(stack.banner(), flush=True)
        # A timed wait keeps the main thread responsive to signals.
        while not stopping.wait(0.5):
            pass
        print("devstack: stopping", file=sys.stderr, flush=True)
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
