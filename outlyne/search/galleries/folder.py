"""A local image folder as a search backend: index once (incrementally), then exact visual search.

Layout of FOLDER/.outlyne/:
    manifest.json          encoder identity, dimension, the embeddings file name, and one entry per indexed
                           image: relative path, size, mtime_ns, sha256, width, height, in row order
    embeddings-<id>.npy    (n, dim) float32 unit rows, row i for entry i

Writes are atomic as a pair: a new embeddings file gets a fresh name, then manifest.json is replaced
(os.replace) to point at it (with the file's SHA-256, checked on every load), then older embeddings files
are deleted. A reader sees the old or the new index, never half of one. `index` runs on one folder take
turns (a file lock, .outlyne/.lock). The folder walk, the change plan and the embed loop are scan.py's,
shared with the Milvus gallery (milvus.py). Results name images by app URL (served.py), never by path.

Search is exact: one matrix-vector product and `np.argpartition`, under 50 ms for 100k x 768 float32
(see search_bench.measure_local_search).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from pathlib import Path

import numpy as np
from filelock import FileLock
from PIL import Image

from outlyne.errors import OutlyneError, SearchUnavailable
from outlyne.files import atomic_write, sha256_file
from outlyne.images import DEFAULT_LIMITS, ImageLimits
from outlyne.model.embedder import Embedder
from outlyne.search.galleries.embedding import EmbeddingSearch
from outlyne.search.galleries.scan import (
    INDEX_DIR,
    EmbeddedBatch,
    Entry,
    IndexReport,
    embed_changes,
    open_image_file,
    plan_changes,
)
from outlyne.search.galleries.served import open_indexed, register, served_id, served_result
from outlyne.search.types import SearchRequest, SearchResult

__all__ = ["GalleryIndex", "IndexReport", "LocalGalleryBackend", "index_folder", "open_image_file"]
MANIFEST = "manifest.json"
MANIFEST_VERSION = 2  # 2: the embeddings file's checksum is recorded and verified on every load
LOCK = ".lock"  # serializes `index` runs on one folder (filelock)


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


def _load_pair(folder: Path) -> tuple[dict, list[Entry], np.ndarray] | None:
    """The manifest, its entries and its embeddings, or None when there is no index. The embeddings file
    must match the checksum the manifest records: a flipped bit is reported, never used."""
    for _attempt in range(2):  # an indexer may swap files between our two reads: read the manifest again
        manifest = _read_manifest(folder)
        if manifest is None:
            return None
        try:
            entries = [Entry(**row) for row in manifest["entries"]]
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
    raise SearchUnavailable("The gallery's index changed while loading; try again.")


def _save(
    folder: Path,
    identity: str,
    dim: int,
    entries: list[Entry],
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
    rebuilt = None
    try:
        previous = _load_pair(folder)
    except SearchUnavailable as error:
        previous, rebuilt = None, str(error).split(";")[0]  # a damaged index is reported and rebuilt
    if previous and (previous[0]["encoder"] != encoder.identity or previous[2].shape[1] != encoder.embed_dim):
        previous = None
    old_entries = previous[1] if previous else []
    old_embeddings = previous[2] if previous else np.zeros((0, encoder.embed_dim), np.float32)
    plan = plan_changes(folder, {entry.path: entry for entry in old_entries})
    rows = {entry.path: row for row, entry in enumerate(old_entries)}
    kept = {path: (entry, old_embeddings[rows[path]]) for path, entry in plan.unchanged.items()}

    def save() -> None:
        paths = sorted(kept)
        matrix = np.stack([kept[p][1] for p in paths]) if paths else old_embeddings[:0]
        entries = [kept[p][0] for p in paths]
        _save(folder, encoder.identity, encoder.embed_dim, entries, matrix.astype(np.float32), None)

    last_save = time.monotonic()

    def store(batch: EmbeddedBatch) -> None:
        nonlocal last_save
        kept.update((entry.path, (entry, vector)) for entry, vector, _ in batch)
        if time.monotonic() - last_save >= checkpoint_seconds:
            save()  # files not reached yet are simply absent: the next run embeds them
            last_save = time.monotonic()

    result = embed_changes(
        folder, plan, encoder, store, batch_size=batch_size, progress=progress, limits=limits
    )
    added, updated = result.added, result.updated
    if added or updated or plan.removed or len(kept) != len(old_entries) or previous is None:
        save()
    elif plan.touched:
        # Same paths, so the same sorted row order: rewrite only the manifest, keep the embeddings file.
        entries = [kept[p][0] for p in sorted(kept)]
        kept_file = (previous[0]["embeddings"], previous[0]["embeddings_sha256"])
        _save(folder, encoder.identity, encoder.embed_dim, entries, None, kept_file)
    unchanged = len(kept) - added - updated
    return IndexReport(added, updated, len(plan.removed), unchanged, result.skipped, rebuilt)


# --- searching ------------------------------------------------------------------------------------------


class GalleryIndex:
    """An indexed folder in memory: relative paths and their unit embedding rows."""

    def __init__(
        self,
        folder: Path,
        paths: list[str],
        embeddings: np.ndarray,
        sizes: list[tuple[int, int]] | None = None,
        hashes: list[str] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.paths = list(paths)
        # sha256 of each file: its served id (served.py) is the start of it.
        self.hashes = hashes if hashes is not None else [str(row) for row in range(len(self.paths))]
        self.rows_by_id = {served_id(sha): row for row, sha in enumerate(self.hashes)}
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
            [e.sha256 for e in entries],
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
        return blend_query(image_embedding, text_embedding, text_weight, self.embeddings.shape[1])

    def nearest_rows(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k rows with the largest dot product with `query`, best first (ties in row order)."""
        k = min(k, len(self.paths))
        if k <= 0:
            return []
        scores = self.embeddings @ np.asarray(query, np.float32)
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.lexsort((top, -scores[top]))]
        return [(int(row), float(scores[row])) for row in top]


def blend_query(
    image_embedding: np.ndarray | None, text_embedding: np.ndarray | None, text_weight: float, dim: int
) -> np.ndarray:
    """score = (1 - text_weight) * cos(row, image) + text_weight * cos(row, text).

    Both terms are linear in the row, so the blend folds into one query vector and search stays a
    single matrix-vector product (or one vector search in Milvus). Image-to-text cosines are several
    times smaller than image-to-image ones in SigLIP, so even a weight of 0.5 leans visual. With only one
    of the two, it alone ranks.
    """
    if image_embedding is None and text_embedding is None:
        raise ValueError("a query needs an image or a text embedding")
    if text_embedding is None:
        return np.asarray(image_embedding, np.float32).reshape(dim)
    if image_embedding is None:
        return np.asarray(text_embedding, np.float32).reshape(dim)
    image = np.asarray(image_embedding, np.float32).reshape(dim)
    text = np.asarray(text_embedding, np.float32).reshape(dim)
    return ((1.0 - text_weight) * image + text_weight * text).astype(np.float32)


class LocalGalleryBackend(EmbeddingSearch):
    """OUTLYNE_SEARCH=local:FOLDER. Ranks the folder's images by similarity to the sketch, optionally
    blended with the query's text embedding when the request carries one, weighted by the request's
    `text_weight` or else this backend's default.

    The index is loaded on first use and reloaded when manifest.json changes, so re-running
    `python -m outlyne index` while the app runs takes effect without a restart.
    """

    name = "local"

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
        register(self)  # outlyne.web.gallery_files serves its indexed images
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
        return open_indexed(self.folder / index.paths[row], self._limits, max_side)

    def search(self, request: SearchRequest) -> list[SearchResult]:
        if request.image_embedding is None and request.text_embedding is None:
            raise SearchUnavailable("Local search needs the sketch's embedding.")
        index = self._current_index()
        weight = self._text_weight if request.text_weight is None else request.text_weight
        query = index.query_vector(request.image_embedding, request.text_embedding, weight)
        return [
            served_result(index.paths[row], index.hashes[row], *index.sizes[row], rank, score, self.name)
            for rank, (row, score) in enumerate(index.nearest_rows(query, request.max_results))
        ]
