"""The HTTP server test subscribers run on.

socketserver listens with a backlog of 5: a fan-out opens up to SETHUB_DELIVERY_CONCURRENCY
connections at once, and on a loaded machine the accept loop falls behind, the kernel drops
the extra SYNs and the client retries after a second, so deliveries to a healthy subscriber
time out. Real servers listen with a backlog of 128 or more; so do the tests'.
"""

from __future__ import annotations

from http.server import ThreadingHTTPServer


class SubscriberServer(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True
