"""A threaded HTTP server on 127.0.0.1 that serves while a `with` block runs: the base of the benchmarks'
image server (search_bench.ImageServer) and of the tests' engine stand-ins (tests/support/engine_servers)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler still sleeping or holding must not block shutdown
    # The default listen backlog of 5 drops connections when 8 arrive at once; the client's SYN retry
    # then adds a full second, which would be measured as fetch time.
    request_queue_size = 128


class BackgroundServer:
    """Listens on a free port from construction; `with` serves requests on a thread, and leaving it stops
    serving and closes the socket."""

    def __init__(self, handler_class: type[BaseHTTPRequestHandler]) -> None:
        self._server = _Server(("127.0.0.1", 0), handler_class)
        # A short poll interval: shutdown() waits up to one interval for the serving loop to notice.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
