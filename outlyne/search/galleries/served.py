"""How a gallery's images reach people: by an app URL, never by a server path.

A search result names an indexed image by SERVED_PREFIX + its id (the start of its content hash), whatever
stores the index (the numpy folder index, Milvus). Every gallery backend the process builds registers here;
outlyne.web.gallery_files answers /outlyne/gallery/<id> by asking them, in turn, for a downsized copy of
the indexed image with that id. An id no gallery has indexed is nothing: the route answers 404.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from PIL import Image

from outlyne.errors import OutlyneError
from outlyne.images import ImageLimits, flatten_to_rgb, open_image
from outlyne.search.types import SearchResult

SERVED_PREFIX = "/outlyne/gallery/"
SERVED_ID_LENGTH = 16
_SERVED_ID = re.compile(f"[0-9a-f]{{{SERVED_ID_LENGTH}}}")


class ServedGallery(Protocol):
    def open_served(self, item_id: str, max_side: int) -> Image.Image | None:
        """A downsized RGB copy of the indexed image with this id, or None."""


# Every gallery this process searches, for outlyne.web.gallery_files to serve their images from.
_SERVED_GALLERIES: weakref.WeakSet[ServedGallery] = weakref.WeakSet()


def register(gallery: ServedGallery) -> None:
    _SERVED_GALLERIES.add(gallery)


def served_id(sha256: str) -> str:
    return sha256[:SERVED_ID_LENGTH]


def is_served_id(item_id: str) -> bool:
    """Only what `served_id` can produce: a gallery is never asked about anything else."""
    return _SERVED_ID.fullmatch(item_id) is not None


def served_result(
    name: str, sha256: str, width: int, height: int, rank: int, score: float, source: str
) -> SearchResult:
    """An indexed image as a search result: its file name as the title, its app URL for everything else."""
    url = SERVED_PREFIX + served_id(sha256)
    return SearchResult(
        title=Path(name).name,
        thumbnail=url,
        image=url,
        url=url,
        source=source,
        width=width or None,
        height=height or None,
        engine_rank=rank,
        similarity=score,
    )


def open_indexed(path: Path, limits: ImageLimits, max_side: int) -> Image.Image | None:
    """An indexed file, opened again through the intake at most max_side px (RGB), or None when it is no
    longer a usable image (swapped for something else, or gone since indexing)."""
    try:
        return flatten_to_rgb(open_image(path, replace(limits, max_side=max_side)))
    except OutlyneError:
        return None


def open_served_image(url: str, max_side: int) -> Image.Image | None:
    """The downsized copy behind a gallery result's app URL (SERVED_PREFIX + id), or None."""
    if not url.startswith(SERVED_PREFIX):
        return None
    item_id = url[len(SERVED_PREFIX) :]
    if not is_served_id(item_id):
        return None
    for gallery in list(_SERVED_GALLERIES):
        image = gallery.open_served(item_id, max_side)
        if image is not None:
            return image
    return None


def is_served(url: str) -> bool:
    """Whether a gallery result's app URL still names an indexed image of a gallery this process searches
    (a shared run's results are checked with it when the link is opened). It opens the image at a tiny
    size through the intake: the only check that also notices a file swapped since indexing."""
    return open_served_image(url, 16) is not None
