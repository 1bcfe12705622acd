"""A local image folder as a search backend: index once (incrementally), then exact visual search.

Layout of FOLDER/.outlyne/:
    manifest.json          encoder identity, dimension, the embeddings file name, and one entry per indexed
                           image: relative path, size, mtime_ns, sha256, width, height, in row order
    embeddings-<id>.npy    (n, dim) float32 unit rows, row i for entry i

Writes are atomic as a pair: a new embeddings file gets a fresh name, then manifest.json is replaced
(os.replace) to point at it, then older embeddings files are deleted. A reader sees the old or the new
index, never half of one. Change detection uses size and mtime first and the content hash second, so a
file that was only touched or copied over with identical bytes is never re-embedded.

Search is exact: one matrix-vector product and `np.argpartition`, under 50 ms for 100k x 768 float32
(see search_bench.measure_local_search).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from filelock import FileLock
from PIL import Image

from outlyne.errors import OutlyneError, SearchUnavailable, shorten
from outlyne.files import atomic_write, sha256_file
from outlyne.images import (
    DEFAULT_LIMITS,
    IMAGE_SUFFIXES,
    ImageLimits,
    flatten_to_rgb,
    open_image,
    read_bounded,
)
from outlyne.model.embedder import Embedder
from outlyne.search.types import SearchRequest, SearchResult

INDEX_DIR = ".outlyne"
MANIFEST = "manifest.json"
MANIFEST_VERSION = 2  # 2: the embeddings file's checksum is recorded and verified on every load
LOCK = ".lock"  # serializes `index` runs on one folder (filelock)
INDEX_SIDE = 448  # images are embedded from at most this size: 2x the model's input
# Search results name an indexed image by this app URL and a stable id (the start of its content hash),
# never by its server path; outlyne.web.gallery_files serves downsized copies under it.
SERVED_PREFIX = "/outlyne/gallery/"
SERVED_ID_LENGTH = 16


@dataclass(frozen=True)
class IndexReport:
    added: int
    updated: int
    removed: int
    unchanged: int
    skipped: list[tuple[str, str]]  # (relative path, reason)
    rebuilt: str | None = None  # why the previous index could not be used (damaged), if it could not


@dataclass(frozen=True)
class _Entry:
    path: str  # relative to the folder, POSIX separators
    size: int
    mtime_ns: int
    sha256: str
    width: int
    height: int


def _index_hint(folder: Path) -> str:
    # Messages from the index reach web users: they name the command, never the server's folder.
    return "run `python -m outlyne index` on the gallery folder"


# --- reading and writing the index ----------------------------------------------------------------------


def _read_manifest(folder: Path) -> dict | None:
    try:
        with open(folder / INDEX_DIR / MANIFEST, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise SearchUnavailable(
            f"The gallery's index is unreadable ({type(error).__name__}); {_index_hint(folder)}."
        ) from error
    if not isinstance(manifest, dict) or manifest.get("version") != MANIFEST_VERSION:
        raise SearchUnavailable(f"The gallery's index has an older format; {_index_hint(folder)}.")
    return manifest


def _load_pair(folder: Path) -> tuple[dict, list[_Entry], np.ndarray] | None:
    """The manifest, its entries and its embeddings, or None when there is no index. The embeddings file
    must match the checksum the manifest records: a flipped bit is reported, never used."""
    for _attempt in range(2):  # an indexer may swap files between our two reads: read the manifest again
        manifest = _read_manifest(folder)
        if manifest is None:
            return None
        try:
            entries = [_Entry(**row) for row in manifest["entries"]]
            name = str(manifest["embeddings"])
            if Path(name).name != name:  # a file inside .outlyne/, never a path elsewhere
                raise ValueError(f"bad embeddings file name {name!r}")
            path = folder / INDEX_DIR / name
            if sha256_file(path) != manifest["embeddings_sha256"]:
                raise SearchUnavailable(
                    f"The gallery's index is damaged (its embeddings do not match their checksum); "
                    f"{_index_hint(folder)}."
                )
            embeddings = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            continue
        except (KeyError, TypeError, ValueError, OSError) as error:
            raise SearchUnavailable(
                f"The gallery's index is damaged ({type(error).__name__}); {_index_hint(folder)}."
            ) from error
        if embeddings.ndim != 2 or embeddings.shape[0] != len(entries):
            raise SearchUnavailable(f"The gallery's index is damaged; {_index_hint(folder)}.")
        return manifest, entries, np.ascontiguousarray(embeddings, dtype=np.float32)
    raise SearchUnavailable(f"The index in {folder} changed while loading; try again.")


def _save(
    folder: Path,
    identity: str,
    dim: int,
    entries: list[_Entry],
    embeddings: np.ndarray | None,
    kept_file: tuple[str, str] | None,
) -> None:
    """Write a new embeddings file when `embeddings` is given (else keep `kept_file`: its name and
    checksum), then the manifest pointing at it with its checksum, then delete embeddings files nothing
    points at."""
    index_dir = folder / INDEX_DIR
    index_dir.mkdir(exist_ok=True)
    if embeddings is not None:
        embeddings_name = f"embeddings-{secrets.token_hex(6)}.npy"
        atomic_write(index_dir / embeddings_name, lambda handle: np.save(handle, embeddings))
        embeddings_sha256 = sha256_file(index_dir / embeddings_name)
    else:
        assert kept_file is not None
        embeddings_name, embeddings_sha256 = kept_file
    manifest = {
        "version": MANIFEST_VERSION,
        "encoder": identity,
        "embed_dim": dim,
        "embeddings": embeddings_name,
        "embeddings_sha256": embeddings_sha256,
        "entries": [entry.__dict__ for entry in entries],
    }
    text = json.dumps(manifest, indent=1).encode("utf-8")
    atomic_write(index_dir / MANIFEST, lambda handle: handle.write(text))
    for stale in index_dir.glob("embeddings-*.npy"):
        if stale.name != embeddings_name:
            stale.unlink(missing_ok=True)


# --- indexing -------------------------------------------------------------------------------------------


def _walk_images(folder: Path) -> Iterator[tuple[str, os.stat_result]]:
    # os.walk without following directory symlinks: a link loop cannot make indexing run forever.
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != INDEX_DIR)
        for name in sorted(files):
            if not name.lower().endswith(IMAGE_SUFFIXES):
                continue
            path = Path(root) / name
            try:
                stat = path.stat()
            except OSError:
                continue  # vanished or a dangling link: nothing to index
            yield path.relative_to(folder).as_posix(), stat


def open_image_file(path: Path, limits: ImageLimits = DEFAULT_LIMITS) -> tuple[Image.Image, str]:
    """A local image file -> (RGB image, sha256 of its bytes), through the one intake (BadImage when it
    cannot be used). Kept at INDEX_SIDE px at most: still 2x the model's input."""
    data = read_bounded(path, limits, f"The image {shorten(path.name, 60)}")
    image = open_image(data, replace(limits, max_side=INDEX_SIDE), name=f"The image {shorten(path.name, 60)}")
    return flatten_to_rgb(image), hashlib.sha256(data).hexdigest()


def _describe(error: Exception) -> str:
    if isinstance(error, OutlyneError):  # the intake's own sentence: too large, not an image, truncated
        return str(error)
    return f"unreadable ({type(error).__name__})"


@dataclass
class _Plan:
    kept: dict[str, tuple[_Entry, np.ndarray]]  # path -> (entry, embedding row) needing no encoder call
    to_embed: list[tuple[str, os.stat_result, bool]]  # (path, stat, was indexed before)
    removed: int
    metadata_changed: bool  # a touched file keeps its row but the manifest records its new mtime


def _plan(folder: Path, old_entries: dict[str, tuple[int, _Entry]], old_embeddings: np.ndarray) -> _Plan:
    plan = _Plan({}, [], 0, False)
    seen: set[str] = set()
    for relative, stat in _walk_images(folder):
        seen.add(relative)
        old = old_entries.get(relative)
        if old is None:
            plan.to_embed.append((relative, stat, False))
            continue
        row, entry = old
        if entry.size == stat.st_size and entry.mtime_ns == stat.st_mtime_ns:
            plan.kept[relative] = (entry, old_embeddings[row])
            continue
        # Size or time changed: the bytes decide (a touched or re-copied file keeps its row).
        try:
            same = entry.size == stat.st_size and sha256_file(folder / relative) == entry.sha256
        except OSError:
            same = False
        if same:
            touched = _Entry(
                relative, stat.st_size, stat.st_mtime_ns, entry.sha256, entry.width, entry.height
            )
            plan.kept[relative] = (touched, old_embeddings[row])
            plan.metadata_changed = True
        else:
            plan.to_embed.append((relative, stat, True))
    plan.removed = sum(1 for path in old_entries if path not in seen)
    return plan


def index_folder(
    folder: Path,
    encoder: Embedder,
    *,
    batch_size: int = 16,
    progress: bool = False,
    checkpoint_seconds: float = 120.0,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> IndexReport:
    """Bring FOLDER/.outlyne/ up to date with the images under FOLDER (recursively) and say what changed.

    New and changed files are embedded in batches of `batch_size`; deleted files are dropped; unchanged
    ones keep their stored rows. Unreadable images are skipped and listed (a previously indexed file that
    became unreadable loses its stale row). An index built by another encoder is rebuilt from scratch.
    Work is saved every `checkpoint_seconds`, so an interrupted run over a big folder resumes where it was.
    A damaged index (say, embeddings that fail their checksum) is reported in `IndexReport.rebuilt` and
    rebuilt. Runs on one folder take turns (a file lock), so two at once cannot leave a broken index.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise OutlyneError(f"{folder} is not a folder.")
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    try:
        (folder / INDEX_DIR).mkdir(exist_ok=True)
        lock = FileLock(folder / INDEX_DIR / LOCK)
        lock.acquire()
    except OSError as error:
        raise OutlyneError(
            f"Cannot write the index into {folder} ({os.strerror(error.errno or 0).lower()})."
        ) from None
    try:
        return _index_locked(folder, encoder, batch_size, progress, checkpoint_seconds, limits)
    except PermissionError:
        raise OutlyneError(f"Cannot write the index into {folder} (permission denied).") from None
    finally:
        lock.release()


def _index_locked(
    folder: Path,
    encoder: Embedder,
    batch_size: int,
    progress: bool,
    checkpoint_seconds: float,
    limits: ImageLimits,
) -> IndexReport:
    from tqdm import tqdm

    rebuilt = None
    try:
        previous = _load_pair(folder)
    except SearchUnavailable as error:
        previous, rebuilt = None, str(error).split(";")[0]  # a damaged index is reported and rebuilt
    if previous and (previous[0]["encoder"] != encoder.identity or previous[2].shape[1] != encoder.embed_dim):
        previous = None
    old_entries = {entry.path: (row, entry) for row, entry in enumerate(previous[1])} if previous else {}
    old_embeddings = previous[2] if previous else np.zeros((0, encoder.embed_dim), np.float32)
    plan = _plan(folder, old_entries, old_embeddings)
    kept = plan.kept

    def save() -> None:
        paths = sorted(kept)
        matrix = np.stack([kept[p][1] for p in paths]) if paths else old_embeddings[:0]
        entries = [kept[p][0] for p in paths]
        _save(folder, encoder.identity, encoder.embed_dim, entries, matrix.astype(np.float32), None)

    skipped: list[tuple[str, str]] = []
    pending: list[tuple[Image.Image, _Entry, bool]] = []  # decoded, waiting for a full batch
    counts = {True: 0, False: 0}  # was indexed before -> embedded now (updated / added)
    last_save = time.monotonic()

    def flush() -> None:
        nonlocal last_save
        vectors = encoder.embed_images([image for image, _, _ in pending], batch_size=batch_size)
        for (_, entry, existed), vector in zip(pending, np.asarray(vectors, np.float32), strict=True):
            kept[entry.path] = (entry, vector)
            counts[existed] += 1
        pending.clear()
        if time.monotonic() - last_save >= checkpoint_seconds:
            save()  # files not reached yet are simply absent: the next run embeds them
            last_save = time.monotonic()

    # Batches are filled with images that decoded, so unreadable files never leave an encoder call short.
    with tqdm(
        total=len(plan.to_embed), desc="indexing", unit="img", file=sys.stderr, disable=not progress
    ) as bar:
        for relative, stat, existed in plan.to_embed:
            try:
                image, sha = open_image_file(folder / relative, limits)
            except Exception as error:  # any decoder failure on any file: skip it, never fatal
                skipped.append((relative, _describe(error)))
            else:
                pending.append(
                    (image, _Entry(relative, stat.st_size, stat.st_mtime_ns, sha, *image.size), existed)
                )
                if len(pending) == batch_size:
                    flush()
            bar.update()
        if pending:
            flush()

    added, updated = counts[False], counts[True]
    if added or updated or plan.removed or len(kept) != len(old_entries) or previous is None:
        save()
    elif plan.metadata_changed:
        # Same paths, so the same sorted row order: rewrite only the manifest, keep the embeddings file.
        entries = [kept[p][0] for p in sorted(kept)]
        kept_file = (previous[0]["embeddings"], previous[0]["embeddings_sha256"])
        _save(folder, encoder.identity, encoder.embed_dim, entries, None, kept_file)
    return IndexReport(added, updated, plan.removed, len(kept) - added - updated, skipped, rebuilt)


# --- searching ------------------------------------------------------------------------------------------


class GalleryIndex:
    """An indexed folder in memory: relative paths and their unit embedding rows."""

    def __init__(
        self,
        folder: Path,
        paths: list[str],
        embeddings: np.ndarray,
        sizes: list[tuple[int, int]] | None = None,
        ids: list[str] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.paths = list(paths)
        self.ids = ids if ids is not None else [str(row) for row in range(len(self.paths))]
        self.rows_by_id = {item_id: row for row, item_id in enumerate(self.ids)}
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.sizes = sizes if sizes is not None else [(0, 0)] * len(self.paths)
        if self.embeddings.ndim != 2 or len(self.embeddings) != len(self.paths):
            raise ValueError("one embedding row per path is required")

    @classmethod
    def load(cls, folder: Path, encoder_identity: str) -> GalleryIndex:
        folder = Path(folder)
        loaded = _load_pair(folder)
        if loaded is None:
            raise SearchUnavailable(f"The gallery has no image index yet; {_index_hint(folder)} first.")
        manifest, entries, embeddings = loaded
        if manifest.get("encoder") != encoder_identity:
            raise SearchUnavailable(
                f"The gallery's index was built with another model; {_index_hint(folder)} to rebuild it."
            )
        return cls(
            folder,
            [e.path for e in entries],
            embeddings,
            [(e.width, e.height) for e in entries],
            [e.sha256[:SERVED_ID_LENGTH] for e in entries],
        )

    def __len__(self) -> int:
        return len(self.paths)

    def nearest(
        self,
        image_embedding: np.ndarray | None,
        *,
        k: int,
        text_embedding: np.ndarray | None = None,
        text_weight: float = 0.0,
    ) -> list[tuple[str, float]]:
        """The k best (relative path, score), best first; exact. See `query_vector` for the score."""
        query = self.query_vector(image_embedding, text_embedding, text_weight)
        return [(self.paths[row], score) for row, score in self.nearest_rows(query, k)]

    def query_vector(
        self, image_embedding: np.ndarray | None, text_embedding: np.ndarray | None, text_weight: float
    ) -> np.ndarray:
        """score = (1 - text_weight) * cos(row, image) + text_weight * cos(row, text).

        Both terms are linear in the row, so the blend folds into one query vector and search stays a
        single matrix-vector product. Image-to-text cosines are several times smaller than image-to-image
        ones in SigLIP, so even a weight of 0.5 leans visual. With only one of the two, it alone ranks.
        """
        if image_embedding is None and text_embedding is None:
            raise ValueError("a query needs an image or a text embedding")
        dim = self.embeddings.shape[1]
        if text_embedding is None:
            return np.asarray(image_embedding, np.float32).reshape(dim)
        if image_embedding is None:
            return np.asarray(text_embedding, np.float32).reshape(dim)
        image = np.asarray(image_embedding, np.float32).reshape(dim)
        text = np.asarray(text_embedding, np.float32).reshape(dim)
        return ((1.0 - text_weight) * image + text_weight * text).astype(np.float32)

    def nearest_rows(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k rows with the largest dot product with `query`, best first (ties in row order)."""
        k = min(k, len(self.paths))
        if k <= 0:
            return []
        scores = self.embeddings @ np.asarray(query, np.float32)
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.lexsort((top, -scores[top]))]
        return [(int(row), float(scores[row])) for row in top]


class LocalGalleryBackend:
    """OUTLYNE_SEARCH=local:FOLDER. Ranks the folder's images by similarity to the sketch, optionally
    blended with the query's text embedding when the request carries one, weighted by the request's
    `text_weight` or else this backend's default.

    The index is loaded on first use and reloaded when manifest.json changes, so re-running
    `python -m outlyne index` while the app runs takes effect without a restart.
    """

    name = "local"
    supports_text_query = False  # searches by embedding; the query's text embedding may be blended in
    ranks_visually = True

    def __init__(
        self,
        folder: Path,
        encoder: Embedder,
        *,
        text_weight: float = 0.3,
        limits: ImageLimits = DEFAULT_LIMITS,
    ) -> None:
        self.folder = Path(folder).expanduser().resolve()
        self._limits = limits
        _SERVED_GALLERIES.add(self)
        self._encoder = encoder
        self._text_weight = text_weight
        self._index: GalleryIndex | None = None
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def _current_index(self) -> GalleryIndex:
        try:
            stat = (self.folder / INDEX_DIR / MANIFEST).stat()
            stamp = (stat.st_mtime_ns, stat.st_ino)
        except OSError:
            stamp = None
        with self._lock:
            if self._index is None or stamp != self._stamp:
                self._index = GalleryIndex.load(self.folder, self._encoder.identity)
                self._stamp = stamp
            return self._index

    def serves(self, item_id: str) -> bool:
        """Whether `item_id` names an image of the current index (nothing is opened)."""
        try:
            return item_id in self._current_index().rows_by_id
        except SearchUnavailable:
            return False

    def open_served(self, item_id: str, max_side: int) -> Image.Image | None:
        """A downsized RGB copy of the indexed image with this id, or None: only indexed images are ever
        opened, through the intake (so a file swapped for something else since indexing is refused)."""
        try:
            index = self._current_index()
        except SearchUnavailable:
            return None
        row = index.rows_by_id.get(item_id)
        if row is None:
            return None
        limits = replace(self._limits, max_side=max_side)
        try:
            return flatten_to_rgb(open_image(self.folder / index.paths[row], limits))
        except OutlyneError:
            return None

    def search(self, request: SearchRequest) -> list[SearchResult]:
        if request.image_embedding is None and request.text_embedding is None:
            raise SearchUnavailable("Local search needs the sketch's embedding.")
        index = self._current_index()
        weight = self._text_weight if request.text_weight is None else request.text_weight
        query = index.query_vector(request.image_embedding, request.text_embedding, weight)
        results = []
        for rank, (row, score) in enumerate(index.nearest_rows(query, request.max_results)):
            width, height = index.sizes[row]
            served = SERVED_PREFIX + index.ids[row]
            results.append(
                SearchResult(
                    title=Path(index.paths[row]).name,
                    thumbnail=served,
                    image=served,
                    url=served,
                    source="local",
                    width=width or None,
                    height=height or None,
                    engine_rank=rank,
                    similarity=score,
                )
            )
        return results


# Every local gallery this process searches, for outlyne.web.gallery_files to serve their images from.
_SERVED_GALLERIES: weakref.WeakSet[LocalGalleryBackend] = weakref.WeakSet()


def open_served_image(url: str, max_side: int) -> Image.Image | None:
    """The downsized copy behind a gallery result's app URL (SERVED_PREFIX + id), or None."""
    if not url.startswith(SERVED_PREFIX):
        return None
    item_id = url[len(SERVED_PREFIX) :]
    for gallery in list(_SERVED_GALLERIES):
        image = gallery.open_served(item_id, max_side)
        if image is not None:
            return image
    return None


def is_served(url: str) -> bool:
    """Whether a gallery result's app URL still names an indexed image of a gallery this process searches
    (a shared run's results are checked with it when the link is opened)."""
    if not url.startswith(SERVED_PREFIX):
        return False
    item_id = url[len(SERVED_PREFIX) :]
    return any(gallery.serves(item_id) for gallery in list(_SERVED_GALLERIES))
