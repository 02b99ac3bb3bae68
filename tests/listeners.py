"""The HTTP server test subscribers run on.

socketserver listens with a backlog of 5: a fan-out opens up to SETHUB_DELIVERY_CONCURRENCY
connections at once, and on a loaded machine the accept loop falls behind, the kernel drops
the extra SYNs and the client retries after a second, so deliveries to a healthy subscriber
time out. Real servers listen with a backlog of 128 or more; so do the tests'. And they
answer with Nagle off: a reply's head and body leave in two writes, and the body would wait
for the hub's delayed ACK (up to 40 ms) on a kept-alive connection.
"""

from __future__ import annotations

import socket
from http.server import ThreadingHTTPServer
from typing import Any


class SubscriberServer(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address
