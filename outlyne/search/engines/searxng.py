"""SearXNG: a meta-search instance the operator runs (`searxng:URL`), asked for its JSON output.

`GET URL/search?q=...&format=json&categories=images`. An instance answers 403 to `format=json` unless its
settings.yml lists `json` under `search.formats`: that is said plainly, since it is the usual first
stumble. The engines the instance itself asked appear in each result's `engine`, kept as the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from outlyne.search.engines.http import make_client, request_json, user_agent
from outlyne.search.engines.parsing import as_int, clean_text, read_rows, results_list, web_url
from outlyne.search.engines.words import WordSearch
from outlyne.search.report import ENGINE_ERROR, EngineFailure
from outlyne.search.types import SearchRequest, SearchResult

about = {
    "website": "https://docs.searxng.org/",
    "official_api_documentation": "https://docs.searxng.org/dev/search_api.html",
    "require_api_key": False,
    "results": "JSON",
}
NAME = "searxng"
TITLE = "SearXNG"
SAFESEARCH = {"off": "0", "moderate": "1", "on": "2"}


def _size(resolution: object) -> tuple[int | None, int | None]:
    """SearXNG reports sizes as "1920 x 1080" (or "1920x1080")."""
    if not isinstance(resolution, str) or "x" not in resolution:
        return None, None
    width, _, height = resolution.partition("x")
    return as_int(width), as_int(height)


def parse(data: Any) -> list[SearchResult]:
    return read_rows(results_list(data), _result)


def _result(position: int, row: Mapping[str, Any]) -> SearchResult | None:
    image = web_url(row.get("img_src"))
    thumbnail = web_url(row.get("thumbnail_src")) or image
    if not thumbnail:  # a web-page result mixed into the images category
        return None
    width, height = _size(row.get("resolution"))
    return SearchResult(
        title=clean_text(row.get("title")),
        thumbnail=thumbnail,
        image=image or thumbnail,
        url=web_url(row.get("url")),
        source=clean_text(row.get("engine")) or TITLE,
        width=width,
        height=height,
        engine_rank=position,
    )


class Engine(WordSearch):
    name = NAME
    title = TITLE
    filters_mature = True  # passes safe search on to the instance's engines
    empty_is_suspect = False

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 8.0,
        contact: str | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.cache_id = f"{NAME}:{self.base_url}"
        self._client = client or make_client(user_agent(contact))

    def search(self, request: SearchRequest) -> list[SearchResult]:
        params = {
            "q": request.query,
            "format": "json",
            "categories": "images",
            "safesearch": SAFESEARCH[request.safesearch],
            "pageno": "1",
        }
        try:
            data = request_json(
                self._client, "GET", f"{self.base_url}/search", params=params, timeout=self.timeout
            )
        except EngineFailure as failure:
            if failure.status == 403:
                raise EngineFailure(
                    ENGINE_ERROR,
                    "JSON output is off (add json to search.formats in settings.yml)",
                    status=403,
                ) from failure
            raise
        return parse(data)[: request.max_results]
