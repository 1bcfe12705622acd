"""Openverse: openly licensed images (Flickr, Wikimedia Commons, museums) through its keyless JSON API.

Every result carries its licence and creator, which is why it sits right after DuckDuckGo in the default
chain. Anonymous use is throttled (about one request a second, at most 20 results a page; a larger page
is refused with 401). Client credentials (OUTLYNE_OPENVERSE_CLIENT_ID / _SECRET, registered at the API)
raise both limits; the access token they buy is kept until shortly before it expires.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from outlyne.search.engines.http import Pacer, make_client, request_json, user_agent
from outlyne.search.engines.parsing import as_int, clean_text, read_rows, results_list, web_url
from outlyne.search.engines.words import WordSearch
from outlyne.search.report import ENGINE_ERROR, EngineFailure
from outlyne.search.types import SearchRequest, SearchResult

about = {
    "website": "https://openverse.org/",
    "official_api_documentation": "https://api.openverse.org/v1/",
    "require_api_key": False,
    "results": "JSON",
}
NAME = "openverse"
TITLE = "Openverse"
BASE_URL = "https://api.openverse.org"
PAGE_SIZE_ANONYMOUS = 20  # the API refuses more without credentials (401)
PAGE_SIZE_AUTHENTICATED = 50  # the API allows 500; 50 is more than re-ranking wants
INTERVAL_ANONYMOUS = 1.0  # seconds between requests: the anonymous throttle is about one a second
INTERVAL_AUTHENTICATED = 0.6  # 100 requests a minute with credentials

# Openverse licence codes -> the names people know.
_LICENCE_NAMES = {"cc0": "CC0", "pdm": "Public Domain Mark", "sampling+": "CC Sampling+"}


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str = field(repr=False)


def licence_name(code: str, version: str) -> str:
    """("by-sa", "2.0") -> "CC BY-SA 2.0"; ("cc0", "1.0") -> "CC0 1.0"."""
    code = clean_text(code, 20).lower()
    if not code:
        return ""
    label = _LICENCE_NAMES.get(code) or f"CC {code.upper()}"
    return f"{label} {clean_text(version, 10)}".strip()


def parse(data: Any) -> list[SearchResult]:
    """/v1/images/ JSON -> results, in the API's order. Rows with no picture to show are dropped."""
    return read_rows(results_list(data), _result)


def _result(position: int, row: Mapping[str, Any]) -> SearchResult | None:
    image = web_url(row.get("url"))
    thumbnail = web_url(row.get("thumbnail")) or image
    page = web_url(row.get("foreign_landing_url"))
    if not thumbnail:
        return None
    return SearchResult(
        title=clean_text(row.get("title")),
        thumbnail=thumbnail,
        image=image or thumbnail,
        url=page,
        source=clean_text(row.get("source") or row.get("provider")) or TITLE,
        width=as_int(row.get("width")),
        height=as_int(row.get("height")),
        engine_rank=position,
        licence=licence_name(str(row.get("license") or ""), str(row.get("license_version") or "")) or None,
        licence_url=web_url(row.get("license_url")) or None,
        creator=clean_text(row.get("creator")) or None,
    )


class Engine(WordSearch):
    name = NAME
    title = TITLE
    filters_mature = True  # `mature=false` unless safe search is off
    empty_is_suspect = False

    def __init__(
        self,
        *,
        base_url: str = BASE_URL,
        credentials: Credentials | None = None,
        timeout: float = 6.0,
        contact: str | None = None,
        client: httpx.Client | None = None,
        pacer: Pacer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.cache_id = NAME
        self._credentials = credentials
        self._client = client or make_client(user_agent(contact))
        interval = INTERVAL_AUTHENTICATED if credentials else INTERVAL_ANONYMOUS
        self._pacer = pacer or Pacer(interval)
        self._clock = clock
        self._token: tuple[str, float] | None = None  # (access token, monotonic expiry)
        self._token_lock = threading.Lock()

    @property
    def page_size(self) -> int:
        return PAGE_SIZE_AUTHENTICATED if self._credentials else PAGE_SIZE_ANONYMOUS

    def search(self, request: SearchRequest) -> list[SearchResult]:
        params = {
            "q": request.query,
            "page_size": min(request.max_results, self.page_size),
            "mature": "true" if request.safesearch == "off" else "false",
        }
        headers = self._auth_headers()
        self._pacer.wait_turn(budget=self.timeout)
        try:
            data = request_json(
                self._client,
                "GET",
                f"{self.base_url}/v1/images/",
                params=params,
                headers=headers,
                timeout=self.timeout,
            )
        except EngineFailure as failure:
            if failure.status == 401 and self._credentials:
                self._token = None  # expired or revoked: the next search asks for a new one
            raise
        return parse(data)[: request.max_results]

    def _auth_headers(self) -> dict[str, str]:
        if self._credentials is None:
            return {}
        with self._token_lock:  # one token request, however many searches start at once
            if self._token is None or self._clock() >= self._token[1]:
                self._token = self._fetch_token(self._credentials)
            return {"Authorization": f"Bearer {self._token[0]}"}

    def _fetch_token(self, credentials: Credentials) -> tuple[str, float]:
        data = request_json(
            self._client,
            "POST",
            f"{self.base_url}/v1/auth_tokens/token/",
            data={
                "grant_type": "client_credentials",
                "client_id": credentials.client_id,
                "client_secret": credentials.client_secret,
            },
            timeout=self.timeout,
        )
        token = data.get("access_token") if isinstance(data, Mapping) else None
        if not isinstance(token, str) or not token:
            raise EngineFailure(ENGINE_ERROR, "no access token for the client credentials")
        lifetime = as_int(data.get("expires_in")) or 3600
        return token, self._clock() + max(0, lifetime - 60)  # renew a minute early
