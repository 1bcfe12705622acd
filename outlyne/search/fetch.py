"""Download thumbnails from URLs a search engine handed us: untrusted input, so every step is bounded.

- http(s) only, no credentials in the URL; the host is resolved here and every address it resolves to
  must be public in every spelling (outlyne.search.addresses), then the connection goes to that vetted
  address (Host header and TLS SNI keep the name), so a DNS answer cannot change between the check and
  the connect. Redirects are followed by hand so each hop is checked again.
- A wall-clock deadline per thumbnail and for the whole batch that every connect, read and write obeys
  (outlyne.search.deadline): when it passes, the socket is closed and the worker returns. A bounded
  thread pool. (Name resolution has no timeout in the standard library; the batch deadline is what
  bounds the caller then.)
- At most `max_bytes` read: Content-Length checked first, then the stream is cut off.
- Decoded by the one intake (outlyne.images) with `max_pixels` and kept at most `keep_side` px. Memory
  for a whole batch is bounded: see `FetchLimits.memory_bound`.

Any failure becomes that entry's `error` (a short reason re-ranking counts); nothing here raises.

httpx rather than urllib: it is already installed (Gradio depends on it), one thread-safe client pools
keep-alive connections (web thumbnails mostly come from one CDN host, so TLS handshakes are reused), it
streams with per-phase timeouts, and its `sni_hostname` extension lets us connect to a vetted IP while
verifying the certificate for the original name; urllib would need a custom HTTPSConnection for that.
"""

from __future__ import annotations

import functools
import logging
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import httpcore
import httpx
from PIL import Image

from outlyne.errors import BadImage
from outlyne.images import LARGE_DECODE_PIXELS, LARGE_DECODE_SLOTS, ImageLimits, flatten_to_rgb, open_image
from outlyne.search.addresses import is_public_address
from outlyne.search.deadline import DeadlineBackend, deadline_for_this_thread

log = logging.getLogger(__name__)

# Thumbnails are small; a few MB of PNG can still decode to gigabytes. Far below the upload limit, since
# up to `concurrency` of them are decoded at once.
MAX_PIXELS = 2048 * 2048
KEEP_SIDE = 448  # what is kept of each thumbnail until it is embedded: 2x the model's input
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
USER_AGENT = "Mozilla/5.0 (compatible; Outlyne thumbnail fetcher)"


@dataclass(frozen=True)
class FetchLimits:
    timeout: float = 5.0  # seconds for one URL, redirects included
    deadline: float = 12.0  # seconds for the whole batch
    max_bytes: int = 4_000_000
    concurrency: int = 8
    allow_loopback: bool = False  # tests serve thumbnails from 127.0.0.1
    max_redirects: int = 3
    max_pixels: int = MAX_PIXELS
    keep_side: int = KEEP_SIDE

    def memory_bound(self, count: int) -> int:
        """Bytes a batch of `count` thumbnails can hold at once, at most: the bodies being read, the
        decodes in flight (those over LARGE_DECODE_PIXELS take turns) and the reduced images kept."""
        workers = min(self.concurrency, count)
        small_decodes = workers * min(self.max_pixels, LARGE_DECODE_PIXELS) * 4
        large_decodes = (
            LARGE_DECODE_SLOTS * self.max_pixels * 4 if self.max_pixels > LARGE_DECODE_PIXELS else 0
        )
        return workers * self.max_bytes + small_decodes + large_decodes + count * self.keep_side**2 * 3


@dataclass(frozen=True)
class Fetched:
    url: str
    image: Image.Image | None  # RGB, alpha flattened onto white
    error: str | None  # "404", "timeout", "not an image", "too large", "private address", ...


class FetchError(Exception):
    """Internal: carries the short reason that ends up in `Fetched.error`."""


def decode_image(data: bytes, limits: FetchLimits = FetchLimits()) -> Image.Image:
    """Bytes -> RGB image at most `keep_side` px, or FetchError("not an image" / "too large")."""
    intake = ImageLimits(max_bytes=limits.max_bytes, max_pixels=limits.max_pixels, max_side=limits.keep_side)
    try:
        return flatten_to_rgb(open_image(data, intake, name="The thumbnail"))
    except BadImage as error:
        raise FetchError("too large" if "too large" in str(error) else "not an image") from error


def _resolve(host: str, port: int, allow_loopback: bool) -> list[str]:
    """The addresses to try, in resolver order. Every address the name resolves to must be public: a
    name that mixes public and private answers is refused rather than hoping a public one gets used."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise FetchError("unknown host") from error
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise FetchError("unknown host")
    if not all(is_public_address(a, allow_loopback=allow_loopback) for a in addresses):
        raise FetchError("private address")
    return addresses[:3]


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise FetchError("timeout")
        return left

    def earlier(self, seconds: float) -> _Deadline:
        other = _Deadline(seconds)
        return other if other.end < self.end else self


def _get(client: httpx.Client, url: str, limits: FetchLimits, deadline: _Deadline) -> bytes:
    """Follow at most `max_redirects` redirects by hand, checking each hop; return the body."""
    current = httpx.URL(url)
    for _hop in range(limits.max_redirects + 1):
        response = _send(client, current, limits, deadline)
        try:
            if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
                current = current.join(response.headers["location"])
                continue
            if response.status_code != 200:
                raise FetchError(str(response.status_code))
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if not content_type.startswith("image/"):
                raise FetchError("not an image")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limits.max_bytes:
                raise FetchError("too large")
            return _read_capped(response, limits.max_bytes, deadline)
        finally:
            response.close()
    raise FetchError("too many redirects")


def _send(client: httpx.Client, url: httpx.URL, limits: FetchLimits, deadline: _Deadline) -> httpx.Response:
    """GET one hop from a vetted address (the next one if a connection is refused), headers only."""
    if url.scheme not in ("http", "https") or not url.host:
        raise FetchError("bad url")
    if url.userinfo:  # never send someone's credentials (httpx would turn them into Basic auth)
        raise FetchError("credentials in url")
    host = url.raw_host.decode("ascii")  # IDNA-encoded: what DNS and TLS SNI expect
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = _resolve(host, port, limits.allow_loopback)

    def request_to(address: str) -> httpx.Request:
        return client.build_request(
            "GET",
            url.copy_with(host=address),
            headers={"Host": url.netloc.decode("ascii")},  # host[:port], never the userinfo
            extensions={
                "sni_hostname": host,  # TLS verifies the certificate for the name, not the address
                "timeout": httpx.Timeout(deadline.remaining()).as_dict(),
            },
        )

    for address in addresses[:-1]:
        try:
            return client.send(request_to(address), stream=True)
        except httpx.ConnectError:
            continue  # e.g. "localhost" answers ::1 first and the server listens on IPv4 only
    return client.send(request_to(addresses[-1]), stream=True)


def _read_capped(response: httpx.Response, max_bytes: int, deadline: _Deadline) -> bytes:
    body = bytearray()
    # Raw bytes: we asked for no content-encoding, and decoding gzip here would let a small compressed body
    # expand past the cap within a single chunk. An encoded body simply fails to decode as an image.
    for chunk in response.iter_raw():  # each network read as it arrives: the cap is checked per read
        body += chunk
        if len(body) > max_bytes:
            raise FetchError("too large")
        deadline.remaining()  # a server dripping bytes slower than the read timeout still hits this
    return bytes(body)


def _fetch_one(client: httpx.Client, url: str, limits: FetchLimits, batch: _Deadline) -> Fetched:
    try:
        deadline = batch.earlier(limits.timeout)
        with deadline_for_this_thread(deadline.end):
            body = _get(client, url, limits, deadline)
        return Fetched(url, decode_image(body, limits), None)
    except FetchError as error:
        return Fetched(url, None, str(error))
    except httpx.TimeoutException:
        return Fetched(url, None, "timeout")
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError):
        return Fetched(url, None, "bad url")
    except (httpx.HTTPError, OSError):
        return Fetched(url, None, "connection failed")
    except Exception as error:  # never fatal: one bad URL must not sink the batch; logged for debugging
        log.warning("unexpected error fetching %s", url, exc_info=True)
        return Fetched(url, None, f"failed ({type(error).__name__})")


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs tens of ms; one verifying context is shared (SSLContext is thread-safe).
    return httpx.create_ssl_context(trust_env=False)


def fetch_images(urls: Sequence[str], limits: FetchLimits = FetchLimits()) -> list[Fetched]:
    """Fetch and decode every URL concurrently; results in the order of `urls`, each with an image or an
    error. Returns by the overall deadline: entries still running then are reported as "timeout"."""
    if not urls:
        return []
    batch = _Deadline(limits.deadline)
    client = httpx.Client(
        # No proxies from the environment: a proxy would make the connection, defeating the address check.
        trust_env=False,
        transport=_deadline_transport(limits.concurrency),
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT, "Accept": "image/*", "Accept-Encoding": "identity"},
    )
    executor = ThreadPoolExecutor(max_workers=max(1, min(limits.concurrency, len(urls))))
    futures = [executor.submit(_fetch_one, client, url, limits, batch) for url in urls]
    done, pending = wait(futures, timeout=max(0.0, limits.deadline))
    if pending:
        # Workers stop on their own within their budget (they check the same deadline); close the client
        # once they have, without making the caller wait for them.
        executor.shutdown(wait=False, cancel_futures=True)
        threading.Thread(target=_close_after, args=(executor, client), daemon=True).start()
    else:
        executor.shutdown(wait=True)
        client.close()
    return [
        future.result() if future in done else Fetched(url, None, "timeout")
        for url, future in zip(urls, futures, strict=True)
    ]


def _deadline_transport(concurrency: int) -> httpx.HTTPTransport:
    """httpx's own transport over a connection pool whose sockets obey the thread's deadline. httpx has
    no parameter for a network backend, so its pool is replaced by an equivalent one that has it."""
    transport = httpx.HTTPTransport(verify=_tls_context(), trust_env=False)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=_tls_context(),
        max_connections=concurrency,
        max_keepalive_connections=concurrency,
        network_backend=DeadlineBackend(),
    )
    return transport


def _close_after(executor: ThreadPoolExecutor, client: httpx.Client) -> None:
    executor.shutdown(wait=True)
    client.close()
