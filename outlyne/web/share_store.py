"""What a share link stores, and the folder that keeps it: bounded, atomic, oldest-first eviction.

A share is one small JSON file, `<cache>/shares/<id>.json`, holding exactly what the page needs to show
the run again: the normalized sketch (a small grayscale PNG, the picture the model saw), the concept
scores, the query and the results' titles, thumbnail URLs and source pages. Never an uploaded original,
never a server path: a local-gallery result is kept as its path *inside* the gallery folder
(`gallery:cats/01.png`) and resolved against the server's gallery again when the share is opened.

Ids are `secrets.token_urlsafe` (128 random bits): a link cannot be guessed from another one. Every
limit is checked before anything is written or parsed: a size cap per share, a total cap on the folder
(the oldest shares go first to make room) and an age after which a share is gone.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from outlyne.concepts.file import ConceptScore
from outlyne.config import Config
from outlyne.errors import ShareUnavailable
from outlyne.files import atomic_write
from outlyne.images import open_image
from outlyne.search.types import SearchResult

FORMAT_VERSION = 1
ID_BYTES = 16  # 128 bits of randomness -> 22 URL-safe characters
SHARE_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")  # what a well-formed id looks like, before any file access
GALLERY_PREFIX = "gallery:"
SKETCH_SIDE = 256  # the stored sketch: enough to see and to draw over, a few KB as a grayscale PNG

# Bounds on what one share may hold, whoever produced it: a run shows at most 100 results and 50 concepts.
MAX_CONCEPTS = 50
MAX_RESULTS = 100
MAX_TEXT = 300  # titles, labels, groups, source names
MAX_QUERY = 1000
MAX_URL = 2048


# -- the record ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SharedRun:
    """One run as a share keeps it. `results` hold web URLs or `gallery:` ids, never server paths."""

    sketch_png: bytes
    concepts: tuple[ConceptScore, ...]
    query: str
    results: tuple[SearchResult, ...] = ()
    backend: str = "none"
    searched: bool = False  # a search ran (an empty gallery then means "nothing found", not "not yet")
    reranked: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "sketch_png": base64.b64encode(self.sketch_png).decode("ascii"),
            "concepts": [
                {"label": c.label, "group": c.group, "score": c.score, "cosine": c.cosine}
                for c in self.concepts
            ],
            "query": self.query,
            "results": [
                {
                    "title": r.title,
                    "thumbnail": r.thumbnail,
                    "image": r.image,
                    "url": r.url,
                    "source": r.source,
                    "similarity": r.similarity,
                }
                for r in self.results
            ],
            "backend": self.backend,
            "searched": self.searched,
            "reranked": self.reranked,
        }

    @classmethod
    def from_json(cls, data: Any) -> SharedRun:
        """Parse and check a stored record; anything unexpected is "unavailable", never a crash."""
        try:
            if not isinstance(data, Mapping) or data.get("version") != FORMAT_VERSION:
                raise ValueError("unknown format")
            sketch_png = base64.b64decode(data["sketch_png"], validate=True)
            concepts = tuple(
                ConceptScore(
                    label=_text(c["label"], MAX_TEXT),
                    group=_text(c["group"], MAX_TEXT),
                    score=_number(c["score"]),
                    cosine=_number(c["cosine"]),
                )
                for c in _bounded_list(data["concepts"], MAX_CONCEPTS)
            )
            results = tuple(
                SearchResult(
                    title=_text(r["title"], MAX_TEXT),
                    thumbnail=_link(r["thumbnail"], allow_gallery=True),
                    image=_link(r["image"], allow_gallery=True),
                    url=_link(r["url"], allow_gallery=False),
                    source=_text(r["source"], MAX_TEXT),
                    similarity=None if r["similarity"] is None else _number(r["similarity"]),
                )
                for r in _bounded_list(data["results"], MAX_RESULTS)
            )
            return cls(
                sketch_png=sketch_png,
                concepts=concepts,
                query=_text(data["query"], MAX_QUERY),
                results=results,
                backend=_text(data["backend"], MAX_TEXT),
                searched=bool(data["searched"]),
                reranked=bool(data["reranked"]),
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as error:
            raise ShareUnavailable() from error

    def sketch_image(self) -> np.ndarray:
        """The stored sketch as HxWx3 uint8 RGB (dark ink on white), through the one image intake."""
        image = open_image(self.sketch_png, name="The shared sketch", max_pixels=SKETCH_SIDE * SKETCH_SIDE)
        return np.asarray(image.convert("RGB"))


def _bounded_list(value: Any, limit: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > limit:
        raise ValueError("not a list within its limit")
    return value


def _text(value: Any, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise ValueError("not a string within its limit")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("not a finite number")
    return float(value)


def _link(value: Any, *, allow_gallery: bool) -> str:
    """Web links, a gallery id (thumbnails and images only), or nothing; no other scheme, no path."""
    text = _text(value, MAX_URL)
    if not text or _is_web_link(text):
        return text
    if allow_gallery and text.startswith(GALLERY_PREFIX) and _safe_relative(text[len(GALLERY_PREFIX) :]):
        return text
    raise ValueError("not a web link or gallery id")


def _safe_relative(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return bool(parts) and not path.startswith("/") and ".." not in parts and "\\" not in path


# -- from a run to a record, and back to things the page can show ------------------------------------


def sketch_png(display_image: np.ndarray) -> bytes:
    """The normalized sketch as a small grayscale PNG: it is black ink on white, colour adds nothing."""
    image = Image.fromarray(np.ascontiguousarray(display_image)).convert("L")
    if max(image.size) > SKETCH_SIDE:
        image = image.resize((SKETCH_SIDE, SKETCH_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def shareable_results(results: Iterable[SearchResult], gallery: Path | None) -> tuple[SearchResult, ...]:
    """Results as a share keeps them: web links as they are, local files as gallery ids (a file outside
    the gallery, or any other kind of link, is left out rather than stored)."""
    kept = []
    for result in list(results)[:MAX_RESULTS]:
        thumbnail = _shareable_link(result.thumbnail, gallery)
        image = _shareable_link(result.image, gallery)
        if not (thumbnail or image):
            continue
        url = result.url if _is_web_link(result.url) and len(result.url) <= MAX_URL else ""
        kept.append(
            SearchResult(
                title=result.title[:MAX_TEXT],
                thumbnail=thumbnail,
                image=image,
                url=url,
                source=result.source[:MAX_TEXT],
                similarity=result.similarity,
            )
        )
    return tuple(kept)


def _is_web_link(link: str) -> bool:
    return link.startswith(("http://", "https://"))


def _shareable_link(link: str, gallery: Path | None) -> str:
    if _is_web_link(link):
        return link if len(link) <= MAX_URL else ""
    if link.startswith(GALLERY_PREFIX):  # a restored share being shared again
        return link if _safe_relative(link[len(GALLERY_PREFIX) :]) else ""
    if not link or gallery is None:
        return ""
    try:
        relative = Path(link).resolve().relative_to(gallery.resolve())
    except (ValueError, OSError):
        return ""
    return GALLERY_PREFIX + relative.as_posix()


def resolve_results(results: Sequence[SearchResult], gallery: Path | None) -> list[SearchResult]:
    """Stored results -> results the page can show: gallery ids become files of this server's gallery
    (a result whose file is gone, or a gallery id on a server without a gallery, is left out)."""
    shown = []
    for result in results:
        thumbnail = _resolve_link(result.thumbnail, gallery)
        image = _resolve_link(result.image, gallery)
        if thumbnail is None or image is None or not (thumbnail or image):
            continue
        shown.append(
            SearchResult(
                title=result.title,
                thumbnail=thumbnail,
                image=image,
                url=result.url,
                source=result.source,
                similarity=result.similarity,
            )
        )
    return shown


def _resolve_link(link: str, gallery: Path | None) -> str | None:
    """ "" stays "", a web link stays itself, a gallery id becomes a path inside the gallery, else None."""
    if not link.startswith(GALLERY_PREFIX):
        return link
    if gallery is None:
        return None
    root = gallery.resolve()
    path = (root / link[len(GALLERY_PREFIX) :]).resolve()
    return str(path) if path.is_relative_to(root) and path.is_file() else None


# -- the folder ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShareLimits:
    max_share_bytes: int
    max_total_bytes: int
    max_age_s: float

    @classmethod
    def from_config(cls, config: Config) -> ShareLimits:
        return cls(config.share_max_bytes, config.share_total_bytes, config.share_max_age_days * 86400.0)


class ShareStore:
    """Shares under one folder. Safe for the threads of one server process (one lock around writes and
    eviction); files are written atomically, so a reader never sees half a share."""

    def __init__(self, folder: Path, limits: ShareLimits, clock: Callable[[], float] = time.time) -> None:
        self.folder = Path(folder)
        self.limits = limits
        self.clock = clock
        self._lock = threading.Lock()

    def save(self, run: SharedRun) -> str:
        """Store a run; returns its new id. The oldest shares make room when the folder is full."""
        data = json.dumps(run.to_json(), separators=(",", ":")).encode("utf-8")
        if len(data) > self.limits.max_share_bytes:
            raise ShareUnavailable(
                f"This run is too large to share ({len(data) // 1024} KB; the limit is "
                f"{self.limits.max_share_bytes // 1024} KB): show fewer results and try again."
            )
        share_id = secrets.token_urlsafe(ID_BYTES)
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._make_room(len(data))
            path = self._path(share_id)
            atomic_write(path, lambda handle: handle.write(data))
            now = self.clock()
            os.utime(path, (now, now))  # the age and the eviction order both follow the store's clock
        return share_id

    def load(self, share_id: str) -> SharedRun:
        """The run behind an id; ShareUnavailable when the id is malformed, unknown, expired or damaged."""
        if not isinstance(share_id, str) or not SHARE_ID.fullmatch(share_id):
            raise ShareUnavailable()
        path = self._path(share_id)
        try:
            stat = path.stat()
            if stat.st_size > self.limits.max_share_bytes:
                raise ShareUnavailable()
            if self.clock() - stat.st_mtime > self.limits.max_age_s:
                path.unlink(missing_ok=True)
                raise ShareUnavailable()
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            raise ShareUnavailable() from None
        return SharedRun.from_json(data)

    def usage(self) -> tuple[int, int]:
        """(number of shares, their total bytes): what the caps are checked against."""
        entries = self._entries()
        return len(entries), sum(size for _, size, _ in entries)

    def _path(self, share_id: str) -> Path:
        return self.folder / f"{share_id}.json"

    def _entries(self) -> list[tuple[float, int, Path]]:
        """(written at, bytes, path) of every share, oldest first."""
        entries = []
        for path in self.folder.glob("*.json"):
            try:
                stat = path.stat()
            except OSError:  # removed meanwhile by another process
                continue
            entries.append((stat.st_mtime, stat.st_size, path))
        return sorted(entries)

    def _make_room(self, incoming: int) -> None:
        """Drop expired shares, then the oldest ones, until `incoming` more bytes fit under the cap."""
        now = self.clock()
        entries = self._entries()
        total = sum(size for _, size, _ in entries)
        for written, size, path in entries:
            if now - written <= self.limits.max_age_s and total + incoming <= self.limits.max_total_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
