"""Image galleries in Milvus: OUTLYNE_SEARCH=milvus:PATH.db (milvus-lite, embedded) or
milvus:http://HOST:19530 (a Milvus server or cluster), the same pymilvus code for both.

One collection per encoder identity (`outlyne_gallery_<hash>`): vectors from another model never mix in,
and a new model starts a new collection while the old one keeps serving. A row is one image file: its
absolute path (the primary key), its folder, size, mtime, sha256, pixel size and unit vector. A
collection can hold several folders; `index FOLDER` only ever adds, replaces or deletes rows of FOLDER.

Indexing is incremental with the same walk and change plan as the numpy folder index (scan.py). Rows are
written in batches of 1000: milvus-lite took 80 times longer per row with batches of 5000 in a trial here.
Search is exact (a FLAT index, inner product of unit vectors = cosine), so it ranks like the numpy index.
Results name images as the folder gallery's do, by app URL (served.py): the id is the start of the sha256
field, looked up in the collection when /outlyne/gallery/<id> is asked for. No folder is ever handed to
Gradio, and messages name neither the folders nor the Milvus address.

milvus-lite holds a lock on its file: one process at a time. Several app processes sharing one gallery
need a server (`python -m milvus_lite server --data-dir DIR --port 19530` is one, a Milvus deployment
another).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from outlyne.errors import OutlyneError, SearchUnavailable, first_line
from outlyne.images import DEFAULT_LIMITS, ImageLimits
from outlyne.model.embedder import Embedder
from outlyne.search.galleries.embedding import EmbeddingSearch
from outlyne.search.galleries.folder import blend_query
from outlyne.search.galleries.scan import (
    EmbeddedBatch,
    Entry,
    IndexReport,
    embed_changes,
    plan_changes,
)
from outlyne.search.galleries.served import is_served_id, open_indexed, register, served_result
from outlyne.search.types import SearchRequest, SearchResult

WRITE_BATCH = 1000
MAX_PATH = 4096
MAX_RESULTS = 1000  # far above what a page shows; Milvus itself refuses limits over 16384
CONNECT_TIMEOUT_S = 10.0
ENTRY_FIELDS = ["path", "folder", "size", "mtime_ns", "sha256", "width", "height"]

# pymilvus logs every failed RPC with a traceback at ERROR, and its query iterator asks milvus-lite's
# in-process gRPC server for a timestamp it does not implement (logged with a traceback, then pymilvus
# falls back to a client-side one). Failures reach people as one SearchUnavailable sentence instead.
# milvus-lite logs a traceback when its file is locked by another process (said plainly below instead).
for _name in ("pymilvus", "grpc._server", "milvus_lite.server_manager"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)
_log = logging.getLogger(__name__)


def collection_name(identity: str) -> str:
    return "outlyne_gallery_" + hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]


def _literal(text: str) -> str:
    """A string literal for a Milvus filter expression (milvus-lite has no filter templates)."""
    return json.dumps(text, ensure_ascii=False)


def _chunks(items: list, size: int = WRITE_BATCH) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class MilvusGallery:
    """One Milvus target (a lite file or a server URI) and the collection of one encoder identity."""

    def __init__(self, uri: str, identity: str, embed_dim: int) -> None:
        self.uri = uri
        self.identity = identity
        self.embed_dim = embed_dim
        self.collection = collection_name(identity)
        self._client = None
        self._lock = threading.Lock()

    def _hint(self) -> str:
        # Messages reach web users: they name the command, never the gallery's address or a folder.
        return "run `python -m outlyne index FOLDER` with the same OUTLYNE_SEARCH"

    def _unavailable(self, error: Exception) -> SearchUnavailable:
        # milvus-lite's lock error does not reach us: pymilvus reports only that the file did not open.
        if self.uri.endswith(".db") and first_line(error).endswith("Open local milvus failed)>"):
            return SearchUnavailable(
                "The Milvus gallery could not be opened; is it open in another process? "
                "milvus-lite allows one: share it through a server instead (python -m milvus_lite server)."
            )
        # pymilvus's own message can name the address or a file: it goes to the log, not to people.
        _log.warning("Milvus gallery %s: %s", self.uri, first_line(error, 300))
        return SearchUnavailable(f"The Milvus gallery is unavailable ({type(error).__name__}).")

    def client(self):
        """The connected MilvusClient, opened once per process (opening milvus-lite takes about a second)."""
        with self._lock:
            if self._client is None:
                try:
                    from pymilvus import MilvusClient
                except ImportError as error:
                    hint = "pip install -r requirements-milvus.txt"
                    raise SearchUnavailable(f"OUTLYNE_SEARCH=milvus:... needs {error.name}: {hint}") from None
                try:
                    self._client = MilvusClient(uri=self.uri, timeout=CONNECT_TIMEOUT_S)
                except Exception as error:  # pymilvus raises MilvusException and plain gRPC errors alike
                    raise self._unavailable(error) from error
            return self._client

    def call(self, method: str, *args, **kwargs):
        """A MilvusClient method, with failures turned into one plain sentence."""
        client = self.client()
        try:
            return getattr(client, method)(*args, **kwargs)
        except OutlyneError:
            raise
        except Exception as error:
            raise self._unavailable(error) from error

    def close(self) -> None:
        """Release the connection (for milvus-lite: its file lock and its in-process server)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def exists(self) -> bool:
        return bool(self.call("has_collection", self.collection))

    def create(self) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("path", DataType.VARCHAR, is_primary=True, max_length=MAX_PATH)
        schema.add_field("folder", DataType.VARCHAR, max_length=MAX_PATH)
        schema.add_field("size", DataType.INT64)
        schema.add_field("mtime_ns", DataType.INT64)
        schema.add_field("sha256", DataType.VARCHAR, max_length=64)
        schema.add_field("width", DataType.INT32)
        schema.add_field("height", DataType.INT32)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.embed_dim)
        index = self.client().prepare_index_params()
        # FLAT: exact, as the numpy index is. A cluster with millions of rows may prefer HNSW (approximate).
        index.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
        self.call(
            "create_collection",
            self.collection,
            schema=schema,
            index_params=index,
            consistency_level="Strong",  # a search right after `index` sees what it wrote
            description=f"Outlyne gallery for {self.identity}"[:255],
        )

    def load(self) -> None:
        """Collections of a reopened milvus-lite file start released; loading a loaded one is a no-op."""
        self.call("load_collection", self.collection)

    def rows(self, fields: list[str], expression: str = "") -> Iterator[dict]:
        """Every row matching expression (all rows when empty), read 1000 at a time."""
        iterator = self.call(
            "query_iterator", self.collection, batch_size=WRITE_BATCH, filter=expression, output_fields=fields
        )
        try:
            while batch := iterator.next():
                yield from batch
        except OutlyneError:
            raise
        except Exception as error:
            raise self._unavailable(error) from error
        finally:
            iterator.close()

    def entries(self, folder: Path) -> dict[str, tuple[str, Entry]]:
        """Relative path -> (primary key, entry) for every row of folder."""
        found: dict[str, tuple[str, Entry]] = {}
        for row in self.rows(ENTRY_FIELDS, f"folder == {_literal(folder.as_posix())}"):
            relative = Path(row["path"]).relative_to(folder).as_posix()
            entry = Entry(
                relative,
                int(row["size"]),
                int(row["mtime_ns"]),
                str(row["sha256"]),
                int(row["width"]),
                int(row["height"]),
            )
            found[relative] = (row["path"], entry)
        return found

    def upsert(self, folder: Path, rows: Iterable[tuple[Entry, np.ndarray]]) -> None:
        """Write rows WRITE_BATCH at a time, converting each batch only when it is sent."""
        batch: list[dict] = []
        for entry, vector in rows:
            batch.append(
                {
                    "path": (folder / entry.path).as_posix(),
                    "folder": folder.as_posix(),
                    "size": entry.size,
                    "mtime_ns": entry.mtime_ns,
                    "sha256": entry.sha256,
                    "width": entry.width,
                    "height": entry.height,
                    "vector": np.asarray(vector, np.float32).tolist(),
                }
            )
            if len(batch) == WRITE_BATCH:
                self.call("upsert", self.collection, batch)
                batch = []
        if batch:
            self.call("upsert", self.collection, batch)

    def vectors(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for chunk in _chunks(keys):
            for row in self.call("get", self.collection, ids=chunk, output_fields=["path", "vector"]):
                found[row["path"]] = np.asarray(row["vector"], np.float32)
        return found

    def delete(self, keys: list[str]) -> None:
        for chunk in _chunks(keys):
            self.call("delete", self.collection, ids=chunk)

    def nearest(self, query: np.ndarray, k: int) -> list[tuple[str, str, int, int, float]]:
        """(absolute path, sha256, width, height, score) of the k best rows, best first, ties by path."""
        hits = self.call(
            "search",
            self.collection,
            data=[np.asarray(query, np.float32).tolist()],
            limit=k,
            anns_field="vector",
            search_params={"metric_type": "IP"},
            output_fields=["sha256", "width", "height"],
        )[0]
        found = [
            (
                hit["path"],
                str(hit["entity"]["sha256"]),
                int(hit["entity"]["width"]),
                int(hit["entity"]["height"]),
                float(hit["distance"]),
            )
            for hit in hits
        ]
        return sorted(found, key=lambda row: (-row[4], row[0]))

    def path_of(self, item_id: str) -> Path | None:
        """The indexed file whose sha256 starts with item_id (a served id), or None."""
        if not is_served_id(item_id):  # hex only: nothing else ever reaches a filter expression
            return None
        rows = self.call(
            "query", self.collection, filter=f'sha256 like "{item_id}%"', output_fields=["path"], limit=1
        )
        return Path(rows[0]["path"]) if rows else None


def index_into_milvus(
    uri: str,
    folder: Path,
    encoder: Embedder,
    *,
    batch_size: int = 16,
    progress: bool = False,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> IndexReport:
    """Bring the rows of FOLDER in the Milvus gallery at uri up to date with the images under FOLDER.

    New and changed files are embedded (batch_size per encoder call) and upserted 1000 rows at a time;
    deleted and now-unreadable files lose their rows; touched files (same bytes) keep their vectors.
    """
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise OutlyneError(f"{folder} is not a folder.")
    gallery = MilvusGallery(uri, encoder.identity, encoder.embed_dim)
    if gallery.exists():
        gallery.load()
        indexed = gallery.entries(folder)
    else:
        gallery.create()
        indexed = {}
    plan = plan_changes(folder, {relative: entry for relative, (_, entry) in indexed.items()})

    if plan.touched:  # new metadata, same vector: read the vectors back and rewrite the rows
        keys = [indexed[relative][0] for relative in plan.touched]
        vectors = gallery.vectors(keys)
        gallery.upsert(
            folder, [(plan.unchanged[rel], vectors[key]) for rel, key in zip(plan.touched, keys, strict=True)]
        )

    buffer: list[tuple[Entry, np.ndarray]] = []

    def store(batch: EmbeddedBatch) -> None:
        buffer.extend((entry, vector) for entry, vector, _ in batch)
        if len(buffer) >= WRITE_BATCH:
            gallery.upsert(folder, buffer)
            buffer.clear()

    result = embed_changes(
        folder, plan, encoder, store, batch_size=batch_size, progress=progress, limits=limits
    )
    gallery.upsert(folder, buffer)
    gone = plan.removed + result.failed_indexed
    gallery.delete([indexed[relative][0] for relative in gone])
    gallery.call("flush", gallery.collection)
    return IndexReport(result.added, result.updated, len(plan.removed), len(plan.unchanged), result.skipped)


class MilvusGalleryBackend(EmbeddingSearch):
    """OUTLYNE_SEARCH=milvus:URI. Ranks the gallery's images by similarity to the sketch, blended with the
    query's text embedding as the folder gallery does. Stateless apart from the connection, so any number
    of app processes can search one Milvus server. Its images are served like a folder gallery's
    (`open_served`), and only those the collection holds."""

    name = "milvus"

    def __init__(
        self,
        uri: str,
        encoder: Embedder,
        *,
        text_weight: float = 0.3,
        limits: ImageLimits = DEFAULT_LIMITS,
    ) -> None:
        self._gallery = MilvusGallery(uri, encoder.identity, encoder.embed_dim)
        self._text_weight = text_weight
        self._limits = limits
        self._ready = False
        register(self)  # outlyne.web.gallery_files serves its indexed images

    def _open(self) -> MilvusGallery:
        gallery = self._gallery
        if not self._ready:
            if not gallery.exists():
                raise SearchUnavailable(
                    f"The Milvus gallery has no images for this model yet; {gallery._hint()}."
                )
            gallery.load()
            self._ready = True
        return gallery

    def open_served(self, item_id: str, max_side: int) -> Image.Image | None:
        """A downsized RGB copy of the indexed image with this id, or None: only files the collection
        holds are ever opened, through the intake (a file swapped for something else is refused)."""
        try:
            path = self._open().path_of(item_id)
        except SearchUnavailable:
            return None
        return open_indexed(path, self._limits, max_side) if path is not None else None

    def search(self, request: SearchRequest) -> list[SearchResult]:
        if request.image_embedding is None and request.text_embedding is None:
            raise SearchUnavailable("Gallery search needs the sketch's embedding.")
        gallery = self._open()
        weight = self._text_weight if request.text_weight is None else request.text_weight
        query = blend_query(request.image_embedding, request.text_embedding, weight, gallery.embed_dim)
        hits = gallery.nearest(query, min(request.max_results, MAX_RESULTS))
        return [
            served_result(path, sha, width, height, rank, score, self.name)
            for rank, (path, sha, width, height, score) in enumerate(hits)
        ]
