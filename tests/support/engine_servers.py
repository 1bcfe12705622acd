"""Local stand-ins for the image search APIs, on 127.0.0.1, answering in the shapes their documentation gives.

- Openverse `GET /v1/images/` (results[].{id, title, url, thumbnail, foreign_landing_url, creator,
  creator_url, license, license_version, license_url, width, height, ...}); anonymous page_size above 20
  is refused with 401; `POST /v1/auth_tokens/token/` (client credentials -> bearer token).
- MediaWiki `api.php?action=query&generator=search&prop=imageinfo` with formatversion=2: `query.pages[]`
  with `index` and `imageinfo[0].{url, descriptionurl, thumburl, width, height, extmetadata}`; no `query`
  key at all when nothing matched.
- SearXNG `GET /search?format=json&categories=images`: results[].{url, img_src, thumbnail_src, title,
  engine, resolution}.

`EngineServer(handler)` serves whatever a handler returns for each request and records the requests;
`Reply.hang` makes it wait on an event (a hanging engine) until the test or benchmark releases it.
`refused_url()` is an address where nothing listens.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from outlyne_dev.local_http import BackgroundServer


@dataclass(frozen=True)
class Seen:
    """One request the server received."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = None  # JSON-able, or bytes sent as they are
    headers: tuple[tuple[str, str], ...] = ()
    hang: threading.Event | None = None  # wait for this before answering (a hanging engine)


Handler = Callable[[Seen], Reply]


class EngineServer(BackgroundServer):
    """`with EngineServer(handler) as server: server.url("/v1/images/")`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        super().__init__(self._handler_class())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs
            disable_nagle_algorithm = True  # headers and body leave at once: no 40 ms delayed-ACK stall

            def _serve(self, form: dict[str, str]) -> None:
                parts = urlsplit(self.path)
                params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                seen = Seen(self.command, parts.path, params, dict(self.headers.items()), form)
                server._record(seen)
                reply = server.handler(seen)
                if reply.hang is not None:
                    reply.hang.wait()
                body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in reply.headers:
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (its timeout): expected in deadline tests

            def do_GET(self) -> None:
                self._serve({})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                self._serve({k: v[-1] for k, v in parse_qs(raw).items()})

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


def refused_url() -> str:
    """A 127.0.0.1 address whose port nothing listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- Openverse ---------------------------------------------------------------------------------------------


def openverse_image(number: int, *, licence: str = "by-sa", version: str = "2.0") -> dict[str, Any]:
    identifier = f"00000000-0000-4000-8000-{number:012d}"
    return {
        "id": identifier,
        "title": f"Cat drawing {number}",
        "indexed_on": "2024-01-01T00:00:00Z",
        "foreign_landing_url": f"https://www.flickr.com/photos/someone/{number}",
        "url": f"https://live.staticflickr.com/{number}/cat.jpg",
        "creator": f"Artist {number}",
        "creator_url": f"https://www.flickr.com/photos/someone{number}",
        "license": licence,
        "license_version": version,
        "license_url": f"https://creativecommons.org/licenses/{licence}/{version}/",
        "provider": "flickr",
        "source": "flickr",
        "category": None,
        "filesize": None,
        "filetype": "jpg",
        "tags": [{"name": "cat", "accuracy": None, "unstable__provider": "flickr"}],
        "attribution": f'"Cat drawing {number}" by Artist {number} is licensed under CC BY-SA 2.0.',
        "fields_matched": ["title"],
        "mature": False,
        "height": 480,
        "width": 640,
        "thumbnail": f"https://api.openverse.org/v1/images/{identifier}/thumb/",
        "detail_url": f"https://api.openverse.org/v1/images/{identifier}/",
        "related_url": f"https://api.openverse.org/v1/images/{identifier}/related/",
        "unstable__sensitivity": [],
    }


def openverse_page(
    images: list[dict[str, Any]], *, page_size: int = 20, total: int | None = None
) -> dict[str, Any]:
    total = len(images) if total is None else total
    return {
        "result_count": total,
        "page_count": max(1, -(-total // page_size)),
        "page_size": page_size,
        "page": 1,
        "results": images,
        "warnings": [],
    }


class OpenverseApi:
    """A handler with the API's documented rules: anonymous page_size <= 20 (else 401), a bearer token from
    client credentials, and a scripted queue of replies for throttling and errors."""

    TOKEN = "test-access-token"

    def __init__(self, available: int = 60, *, client_id: str = "id", client_secret: str = "secret") -> None:
        self.available = available
        self.client_id = client_id
        self.client_secret = client_secret
        self.scripted: list[Reply] = []  # replies served first, in order, to /v1/images/

    def __call__(self, seen: Seen) -> Reply:
        if seen.path == "/v1/auth_tokens/token/" and seen.method == "POST":
            if (seen.form.get("client_id"), seen.form.get("client_secret")) != (
                self.client_id,
                self.client_secret,
            ):
                return Reply(401, {"error": "invalid_client"})
            return Reply(
                200,
                {
                    "access_token": self.TOKEN,
                    "scope": "read write",
                    "expires_in": 36000,
                    "token_type": "Bearer",
                },
            )
        if seen.path != "/v1/images/":
            return Reply(404, {"detail": "Not found."})
        if self.scripted:
            return self.scripted.pop(0)
        authenticated = seen.headers.get("Authorization") == f"Bearer {self.TOKEN}"
        page_size = int(seen.params.get("page_size", "20"))
        if page_size > 20 and not authenticated:
            return Reply(401, {"detail": "Authentication credentials were not provided."})
        images = [openverse_image(n) for n in range(min(page_size, self.available))]
        return Reply(200, openverse_page(images, page_size=page_size, total=self.available))


# --- MediaWiki (Wikimedia Commons) -------------------------------------------------------------------------


def _meta(value: str) -> dict[str, str]:
    return {"value": value, "source": "commons-desc-page", "hidden": ""}


def commons_page(number: int, index: int) -> dict[str, Any]:
    name = f"Cat sketch {number}.png"
    user = f"//commons.wikimedia.org/wiki/User:Drawer{number}"  # Commons writes protocol-relative links
    return {
        "pageid": 1000 + number,
        "ns": 6,
        "title": f"File:{name}",
        "index": index,
        "imagerepository": "local",
        "imageinfo": [
            {
                "size": 52000,
                "width": 800,
                "height": 600,
                "thumburl": f"https://upload.wikimedia.org/wikipedia/commons/thumb/a/ab/{number}.png/320px-{number}.png",
                "thumbwidth": 320,
                "thumbheight": 240,
                "responsiveUrls": {},
                "url": f"https://upload.wikimedia.org/wikipedia/commons/a/ab/{number}.png",
                "descriptionurl": f"https://commons.wikimedia.org/wiki/File:Cat_sketch_{number}.png",
                "descriptionshorturl": f"https://commons.wikimedia.org/w/index.php?curid={1000 + number}",
                "extmetadata": {
                    "ObjectName": _meta(f"Cat sketch {number}"),
                    "LicenseShortName": _meta("CC BY-SA 4.0"),
                    "LicenseUrl": _meta("https://creativecommons.org/licenses/by-sa/4.0"),
                    "Artist": _meta(f'<a href="{user}" title="User:Drawer{number}">Drawer {number}</a>'),
                },
            }
        ],
    }


def commons_answer(count: int, *, limit: int) -> dict[str, Any]:
    """The API's answer; pages come in page-id order, the search rank is in `index`."""
    if count == 0:
        return {"batchcomplete": True}
    shown = min(count, limit)
    pages = [commons_page(n, index=shown - n) for n in range(shown)]  # ids and ranks in opposite orders
    answer: dict[str, Any] = {"batchcomplete": True, "query": {"pages": pages}}
    if count > shown:
        answer["continue"] = {"gsroffset": shown, "continue": "gsroffset||"}
    return answer


class CommonsApi:
    def __init__(self, available: int = 30) -> None:
        self.available = available
        self.scripted: list[Reply] = []

    def __call__(self, seen: Seen) -> Reply:
        if self.scripted:
            return self.scripted.pop(0)
        if seen.params.get("action") != "query" or seen.params.get("generator") != "search":
            return Reply(200, {"error": {"code": "badvalue", "info": "Unrecognized value."}})
        limit = int(seen.params.get("gsrlimit", "10"))
        if limit > 500:
            return Reply(200, {"error": {"code": "toomanyvalues", "info": "Too many values."}})
        return Reply(200, commons_answer(self.available, limit=limit))


# --- SearXNG -----------------------------------------------------------------------------------------------


def searxng_result(number: int) -> dict[str, Any]:
    return {
        "url": f"https://example.org/page/{number}",
        "title": f"cat picture {number}",
        "content": "",
        "img_src": f"https://images.example.org/{number}.jpg",
        "thumbnail_src": f"https://thumbs.example.org/{number}.jpg",
        "resolution": "1024 x 768",
        "img_format": "jpeg",
        "engine": "bing images",
        "engines": ["bing images"],
        "template": "images.html",
        "category": "images",
        "positions": [number + 1],
        "score": 1.0,
    }


class SearxngApi:
    def __init__(self, available: int = 40, *, json_enabled: bool = True) -> None:
        self.available = available
        self.json_enabled = json_enabled
        self.scripted: list[Reply] = []

    def __call__(self, seen: Seen) -> Reply:
        if self.scripted:
            return self.scripted.pop(0)
        if seen.path != "/search":
            return Reply(404, b"Not Found")
        if seen.params.get("format") == "json" and not self.json_enabled:
            return Reply(403, b"<html>403 Forbidden</html>")
        return Reply(
            200,
            {
                "query": seen.params.get("q", ""),
                "number_of_results": 0,
                "results": [searxng_result(n) for n in range(self.available)],
                "answers": [],
                "corrections": [],
                "infoboxes": [],
                "suggestions": [],
                "unresponsive_engines": [],
            },
        )


def by_path(routes: Mapping[str, Handler]) -> Handler:
    """Several fake APIs behind one server, chosen by path prefix."""

    def handler(seen: Seen) -> Reply:
        for prefix, route in routes.items():
            if seen.path.startswith(prefix):
                return route(seen)
        return Reply(404, {"detail": "Not found."})

    return handler
