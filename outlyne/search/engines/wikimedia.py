"""Wikimedia Commons: freely licensed media, searched through the MediaWiki API (keyless).

One request: `generator=search` over the File namespace (bitmaps and drawings only) with
`prop=imageinfo` for the file's URL, a scaled thumbnail (`iiurlwidth`) and its licence metadata
(`extmetadata`). Wikimedia's policy asks API clients for a descriptive User-Agent with a way to reach the
operator (OUTLYNE_CONTACT adds one). Commons has no safe-search filter, so the chain skips this engine when
strict safe search is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from outlyne.search.engines.http import make_client, request_json, user_agent
from outlyne.search.engines.parsing import as_int, clean_text, read_rows, web_url
from outlyne.search.engines.words import WordSearch
from outlyne.search.report import ENGINE_ERROR, RATE_LIMITED, EngineFailure
from outlyne.search.types import SearchRequest, SearchResult

about = {
    "website": "https://commons.wikimedia.org/",
    "official_api_documentation": "https://commons.wikimedia.org/w/api.php",
    "require_api_key": False,
    "results": "JSON",
}
NAME = "wikimedia"
TITLE = "Wikimedia Commons"
API_URL = "https://commons.wikimedia.org/w/api.php"
PAGE_SIZE = 50  # thumbnails for more files than this in one request are not guaranteed
THUMBNAIL_WIDTH = 320  # re-ranking wants >= 224 px
# Only the metadata fields shown: the full set is several kB per file.
METADATA_FIELDS = "LicenseShortName|LicenseUrl|Artist|ObjectName"
# MediaWiki error codes that mean "slow down".
_THROTTLE_CODES = {"ratelimited", "maxlag", "too-many-requests"}


def _metadata(info: Mapping[str, Any], field: str) -> str:
    entry = (info.get("extmetadata") or {}).get(field)
    return entry.get("value", "") if isinstance(entry, Mapping) else ""


def _title(page: Mapping[str, Any], info: Mapping[str, Any]) -> str:
    """ObjectName when the file has one, else the file name without "File:" and its extension."""
    named = clean_text(_metadata(info, "ObjectName"))
    if named:
        return named
    file_title = clean_text(page.get("title")).removeprefix("File:")
    return file_title.rsplit(".", 1)[0] if "." in file_title else file_title


def parse(data: Any) -> list[SearchResult]:
    """API JSON (formatversion=2) -> results in search order (`index`)."""
    if not isinstance(data, Mapping):
        raise EngineFailure(ENGINE_ERROR, "unexpected answer")
    error = data.get("error")
    if isinstance(error, Mapping):
        code = str(error.get("code", ""))
        kind = RATE_LIMITED if code in _THROTTLE_CODES else ENGINE_ERROR
        raise EngineFailure(kind, f"API error {clean_text(code, 60)}")
    query = data.get("query")
    if query is None:  # what the API answers when the search found nothing
        return []
    pages = query.get("pages") if isinstance(query, Mapping) else None
    if not isinstance(pages, list):
        raise EngineFailure(ENGINE_ERROR, "unexpected answer (no pages list)")
    pages = [p for p in pages if isinstance(p, Mapping)]
    pages.sort(key=lambda p: as_int(p.get("index")) or 0)  # generator results come unordered
    return read_rows(pages, _result)


def _result(position: int, page: Mapping[str, Any]) -> SearchResult | None:
    infos = page.get("imageinfo")
    info = infos[0] if isinstance(infos, list) and infos and isinstance(infos[0], Mapping) else None
    if info is None:
        return None
    image = web_url(info.get("url"))
    thumbnail = web_url(info.get("thumburl")) or image
    if not thumbnail:
        return None
    return SearchResult(
        title=_title(page, info),
        thumbnail=thumbnail,
        image=image or thumbnail,
        url=web_url(info.get("descriptionurl")),
        source=TITLE,
        width=as_int(info.get("width")),
        height=as_int(info.get("height")),
        engine_rank=position,
        licence=clean_text(_metadata(info, "LicenseShortName")) or None,
        licence_url=web_url(_metadata(info, "LicenseUrl")) or None,
        creator=clean_text(_metadata(info, "Artist")) or None,
    )


class Engine(WordSearch):
    name = NAME
    title = TITLE
    filters_mature = False
    empty_is_suspect = False

    def __init__(
        self,
        *,
        api_url: str = API_URL,
        timeout: float = 6.0,
        contact: str | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.api_url = api_url
        self.timeout = timeout
        self.cache_id = NAME
        self._client = client or make_client(user_agent(contact))

    def search(self, request: SearchRequest) -> list[SearchResult]:
        params = {
            "action": "query",
            "format": "json",
            "formatversion": "2",
            "generator": "search",
            "gsrnamespace": "6",  # File:
            "gsrsearch": f"filetype:bitmap|drawing {request.query}",
            "gsrlimit": str(min(request.max_results, PAGE_SIZE)),
            "prop": "imageinfo",
            "iiprop": "url|size|extmetadata",
            "iiurlwidth": str(THUMBNAIL_WIDTH),
            "iiextmetadatafilter": METADATA_FIELDS,
            "iiextmetadatalanguage": "en",
        }
        data = request_json(self._client, "GET", self.api_url, params=params, timeout=self.timeout)
        return parse(data)[: request.max_results]
