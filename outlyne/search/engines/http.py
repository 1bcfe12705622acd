"""What the JSON web engines share: one bounded HTTP request with classified failures, and a pacer.

The engines' hosts are fixed by configuration (not by search results), so unlike thumbnail fetching
(fetch.py) there is no address vetting here; what is bounded is time (per-phase timeouts, set by the
caller) and memory (the body is read up to `MAX_BODY_BYTES`, then cut off).
"""

from __future__ import annotations

import email.utils
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from outlyne.search.report import ENGINE_ERROR, OFFLINE, RATE_LIMITED, TIMED_OUT, EngineFailure

MAX_BODY_BYTES = 4_000_000  # an answer of 50 results with metadata is ~100 kB
PRODUCT = "Outlyne/1.0"


def user_agent(contact: str | None = None) -> str:
    """Wikimedia's policy asks for a name, a way to reach the operator, and the library."""
    where = f"sketch-to-image search; {contact}" if contact else "sketch-to-image search"
    return f"{PRODUCT} ({where}) python-httpx/{httpx.__version__}"


def retry_after_seconds(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Retry-After is either seconds or an HTTP date (RFC 9110 10.2.3); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def failure_for_status(response: httpx.Response) -> EngineFailure:
    status = response.status_code
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    if status == 429:
        return EngineFailure(RATE_LIMITED, "HTTP 429", retry_after=retry_after, status=status)
    if status == 403:  # what blocked datacenter addresses usually get
        return EngineFailure(RATE_LIMITED, "refused (HTTP 403)", retry_after=retry_after, status=status)
    return EngineFailure(ENGINE_ERROR, f"HTTP {status}", retry_after=retry_after, status=status)


def failure_for_exception(error: BaseException) -> EngineFailure:
    """httpx errors -> a failure kind. A DNS failure is "offline", never "rate limited"."""
    if isinstance(error, httpx.TimeoutException):
        return EngineFailure(TIMED_OUT, "timed out")
    if isinstance(error, httpx.ConnectError):
        if is_dns_failure(error):
            return EngineFailure(OFFLINE, "DNS lookup failed")
        refused = "refused" in str(error).lower()
        return EngineFailure(OFFLINE, "connection refused" if refused else "connection failed")
    if isinstance(error, httpx.HTTPError):
        return EngineFailure(ENGINE_ERROR, type(error).__name__)
    raise error


def is_dns_failure(error: BaseException) -> bool:
    """True when a name could not be resolved: the socket error is chained below httpx's."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return True
        text = str(seen).lower()
        if (
            "name or service not known" in text
            or "name resolution" in text
            or "nodename nor servname" in text
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def request_json(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    data: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float,
) -> Any:
    """One request -> decoded JSON, or EngineFailure. The body is read in chunks up to MAX_BODY_BYTES."""
    try:
        with client.stream(
            method, url, params=params, data=data, headers=headers, timeout=timeout
        ) as response:
            if response.status_code != 200:
                raise failure_for_status(response)
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                raise EngineFailure(ENGINE_ERROR, "answer too large")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise EngineFailure(ENGINE_ERROR, "answer too large")
    except httpx.HTTPError as error:
        raise failure_for_exception(error) from error
    try:
        return json.loads(body)
    except ValueError:
        raise EngineFailure(ENGINE_ERROR, "answer is not JSON") from None


def make_client(user_agent_text: str) -> httpx.Client:
    """A pooled client per engine (keep-alive to one host). No redirects: an API that redirects is
    misconfigured, and following it blindly would take us somewhere configuration did not name."""
    return httpx.Client(headers={"User-Agent": user_agent_text, "Accept": "application/json"})


class Pacer:
    """At most one request per `interval` seconds from this process, as an engine's terms ask.

    Callers reserve the next free slot under a lock and wait for it outside the lock; one whose slot lies
    further away than `budget` does not queue, it fails at once as rate-limited (the chain moves on).
    `clock` and `sleep` are injectable so tests never sleep.
    """

    def __init__(
        self,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._next_free = float("-inf")
        self._lock = threading.Lock()

    def wait_turn(self, budget: float) -> None:
        if self.interval <= 0:
            return
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_free)
            wait = slot - now
            if wait > budget:
                raise EngineFailure(RATE_LIMITED, f"local pace of one request per {self.interval:g} s")
            self._next_free = slot + self.interval
        if wait > 0:
            self._sleep(wait)
