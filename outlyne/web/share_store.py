"""What a share link stores, and the folder that keeps it: bounded, atomic, oldest-first eviction.

A share is one small JSON file, `<cache>/shares/<id>.json`, holding exactly what the page needs to show
the run again: the normalized sketch (a small grayscale PNG, the picture the model saw), the concept
scores, the query and the results' titles, thumbnail URLs, source pages and attribution. Never an uploaded
original, never a server path: a local-gallery result is kept as the app URL the page already shows it by
(`/outlyne/gallery/<id>`, outlyne.web.gallery_files), and left out when the share is opened on a server
whose gallery no longer has it.

Ids are `secrets.token_urlsafe` (128 random bits): a link cannot be guessed from another one. Every
limit is checked before anything is written or parsed: a size cap per share, a total cap on the folder
(the oldest shares go first to make room) and an age after which a share is gone.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from outlyne.concepts.file import ConceptScore
from outlyne.config import Config
from outlyne.errors import ShareUnavailable
from outlyne.files import atomic_write
from outlyne.images import ImageLimits, open_image
from outlyne.search.galleries.served import SERVED_PREFIX, is_served
from outlyne.search.types import SearchResult

FORMAT_VERSION = 1
ID_BYTES = 16  # 128 bits of randomness -> 22 URL-safe characters
SHARE_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")  # what a well-formed id looks like, before any file access
SKETCH_SIDE = 256  # the stored sketch: enough to see and to draw over, a few KB as a grayscale PNG
PNG_COMPRESSION = 6

SKETCH_LIMITS = ImageLimits(max_bytes=1_000_000, max_pixels=SKETCH_SIDE * SKETCH_SIDE, max_side=SKETCH_SIDE)

# Bounds on what one share may hold, whoever produced it: a run shows at most 100 results and 50 concepts.
MAX_CONCEPTS = 50
MAX_RESULTS = 100
MAX_TEXT = 300  # titles, labels, groups, source names
MAX_QUERY = 1000
MAX_URL = 2048


# -- the record ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SharedRun:
    """One run as a share keeps it. `results` hold web URLs or gallery app URLs, never server paths."""

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
                    "licence": r.licence,
                    "licence_url": r.licence_url,
                    "creator": r.creator,
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
                    thumbnail=_link(r["thumbnail"]),
                    image=_link(r["image"]),
                    url=_link(r["url"]),
                    source=_text(r["source"], MAX_TEXT),
                    similarity=None if r["similarity"] is None else _number(r["similarity"]),
                    licence=_optional_text(r.get("licence"), MAX_TEXT),
                    licence_url=_optional_link(r.get("licence_url")),
                    creator=_optional_text(r.get("creator"), MAX_TEXT),
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
        image = open_image(self.sketch_png, SKETCH_LIMITS, name="The shared sketch")
        return np.asarray(image.convert("RGB"))

    def sketch_data_url(self) -> str:
        """The stored sketch as the canvas takes it (outlyne.web.canvas): a PNG data URL, checked first."""
        self.sketch_image()  # a damaged PNG is refused here, never handed to a browser
        return "data:image/png;base64," + base64.b64encode(self.sketch_png).decode("ascii")


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


def _optional_text(value: Any, limit: int) -> str | None:
    return None if value is None else _text(value, limit)


def _link(value: Any) -> str:
    """A web link, a gallery app URL, or nothing; no other scheme, no path."""
    text = _text(value, MAX_URL)
    if text and not _is_shareable_link(text):
        raise ValueError("not a web link or gallery app URL")
    return text


def _optional_link(value: Any) -> str | None:
    return None if value is None else _link(value)


def _is_web_link(link: str) -> bool:
    return link.startswith(("http://", "https://"))


def _is_gallery_link(link: str) -> bool:
    """/outlyne/gallery/<id>: the id is letters and digits only, so the URL cannot lead anywhere else."""
    item_id = link[len(SERVED_PREFIX) :]
    well_formed = 0 < len(item_id) <= 64 and item_id.isascii() and item_id.isalnum()
    return link.startswith(SERVED_PREFIX) and well_formed


def _is_shareable_link(link: str) -> bool:
    return len(link) <= MAX_URL and (_is_web_link(link) or _is_gallery_link(link))


# -- from a run to a record, and back to things the page can show ------------------------------------


def sketch_png(display_image: np.ndarray) -> bytes:
    """The normalized sketch as a small grayscale PNG: it is black ink on white, colour adds nothing.
    OpenCV at zlib level 6: ~6 ms for a 256 px drawing here, against ~60 ms for Pillow's optimize=True
    (which saves a few hundred bytes); the page records a run after every stroke, so this cost counts."""
    image = np.ascontiguousarray(display_image, dtype=np.uint8)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    if max(gray.shape) > SKETCH_SIDE:
        gray = cv2.resize(gray, (SKETCH_SIDE, SKETCH_SIDE), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", gray, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:  # not seen: a uint8 gray image always encodes
        raise ShareUnavailable("The drawing could not be stored for sharing.")
    return png.tobytes()


def shareable_results(results: Iterable[SearchResult]) -> tuple[SearchResult, ...]:
    """Results as a share keeps them: web links and gallery app URLs as they are; any other link (a file
    path, another scheme) is dropped, and a result with no picture left is left out."""
    kept = []
    for result in list(results)[:MAX_RESULTS]:
        thumbnail, image = _shareable(result.thumbnail), _shareable(result.image)
        if not (thumbnail or image):
            continue
        kept.append(
            SearchResult(
                title=result.title[:MAX_TEXT],
                thumbnail=thumbnail,
                image=image,
                url=_shareable(result.url),
                source=result.source[:MAX_TEXT],
                similarity=result.similarity,
                licence=None if result.licence is None else result.licence[:MAX_TEXT],
                licence_url=_shareable(result.licence_url or "") or None,
                creator=None if result.creator is None else result.creator[:MAX_TEXT],
            )
        )
    return tuple(kept)


def _shareable(link: str) -> str:
    return link if _is_shareable_link(link) else ""


def resolve_results(
    results: Sequence[SearchResult], served: Callable[[str], bool] = is_served
) -> list[SearchResult]:
    """Stored results -> results the page can show: a gallery result whose image this server no longer
    serves (re-indexed, removed, another gallery) is left out rather than shown broken."""
    return [
        result
        for result in results
        if all(served(link) for link in (result.thumbnail, result.image) if _is_gallery_link(link))
    ]


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
