"""An httpcore network backend whose every blocking call ends by a wall-clock deadline.

httpx's timeouts are per phase and per socket read: a server that sends one byte every few seconds never
trips a read timeout, and the bytes pile up inside httpx before our code sees them. Here each connect,
TLS handshake, read and write gets at most the time left before the current thread's deadline (set with
`deadline_for_this_thread`), so when the deadline passes the blocking call fails, httpx raises a timeout
and closes the socket: no thread or connection outlives it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import httpcore
from httpcore._backends.sync import SyncBackend

_current = threading.local()


@contextlib.contextmanager
def deadline_for_this_thread(end: float) -> Iterator[None]:
    """Network calls made by this thread inside the block end by `end` (a time.monotonic() value)."""
    previous = getattr(_current, "end", None)
    _current.end = end
    try:
        yield
    finally:
        _current.end = previous


def _clamp(timeout: float | None) -> float | None:
    end = getattr(_current, "end", None)
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the deadline passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout)))

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = SyncBackend()

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        stream = self._inner.connect_tcp(host, port, _clamp(timeout), local_address, socket_options)
        return _Stream(stream)

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise httpcore.ConnectError("thumbnails are never fetched over a unix socket")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
