"""What every gallery index shares, whatever stores the vectors: walk a folder, compare it with what the
index holds, decode and embed what is new or changed, in batches.

The numpy folder index (folder.py) and the Milvus collection (milvus.py) differ only in where entries and
vectors live; both call `plan_changes` with the entries they hold and `embed_changes` with a callback that
stores each embedded batch. Change detection uses size and mtime first and the content hash second, so a
file that was only touched or copied over with identical bytes is never re-embedded.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from outlyne.errors import OutlyneError, shorten
from outlyne.files import sha256_file
from outlyne.images import (
    DEFAULT_LIMITS,
    IMAGE_SUFFIXES,
    ImageLimits,
    flatten_to_rgb,
    open_image,
    read_bounded,
)
from outlyne.model.embedder import Embedder

INDEX_DIR = ".outlyne"  # the folder index's own files; never walked as images
INDEX_SIDE = 448  # images are embedded from at most this size: 2x the model's input


@dataclass(frozen=True)
class IndexReport:
    added: int
    updated: int
    removed: int
    unchanged: int
    skipped: list[tuple[str, str]]  # (relative path, reason)
    rebuilt: str | None = None  # why the previous index could not be used (damaged), if it could not


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the folder, POSIX separators
    size: int
    mtime_ns: int
    sha256: str
    width: int
    height: int


@dataclass
class Plan:
    unchanged: dict[str, Entry] = field(default_factory=dict)
    """Path -> entry whose stored vector stays valid (with the file's current size and mtime)."""
    touched: list[str] = field(default_factory=list)
    """Unchanged paths whose size/mtime changed but whose bytes did not: only their metadata is rewritten."""
    to_embed: list[tuple[str, os.stat_result, bool]] = field(default_factory=list)
    """(path, stat, was indexed before) for new and changed files."""
    removed: list[str] = field(default_factory=list)
    """Indexed paths that are gone from the folder."""


def walk_images(folder: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(relative POSIX path, stat) of every image file under folder, in sorted order."""
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


def plan_changes(folder: Path, indexed: Mapping[str, Entry]) -> Plan:
    """Compare the folder with what the index holds (path -> entry)."""
    plan = Plan()
    seen: set[str] = set()
    for relative, stat in walk_images(folder):
        seen.add(relative)
        entry = indexed.get(relative)
        if entry is None:
            plan.to_embed.append((relative, stat, False))
        elif entry.size == stat.st_size and entry.mtime_ns == stat.st_mtime_ns:
            plan.unchanged[relative] = entry
        elif _same_bytes(folder / relative, entry, stat):
            # Size or time changed but the bytes did not (touched, or re-copied): keep the vector.
            plan.unchanged[relative] = replace(entry, size=stat.st_size, mtime_ns=stat.st_mtime_ns)
            plan.touched.append(relative)
        else:
            plan.to_embed.append((relative, stat, True))
    plan.removed = [path for path in indexed if path not in seen]
    return plan


def _same_bytes(path: Path, entry: Entry, stat: os.stat_result) -> bool:
    try:
        return entry.size == stat.st_size and sha256_file(path) == entry.sha256
    except OSError:
        return False


def open_image_file(path: Path, limits: ImageLimits = DEFAULT_LIMITS) -> tuple[Image.Image, str]:
    """A local image file -> (RGB image, sha256 of its bytes), through the one intake (BadImage when it
    cannot be used). Kept at INDEX_SIDE px at most: still 2x the model's input."""
    name = f"The image {shorten(path.name, 60)}"
    data = read_bounded(path, limits, name)
    image = open_image(data, replace(limits, max_side=INDEX_SIDE), name=name)
    return flatten_to_rgb(image), hashlib.sha256(data).hexdigest()


def describe_failure(error: Exception) -> str:
    if isinstance(error, OutlyneError):  # the intake's own sentence: too large, not an image, truncated
        return str(error)
    return f"unreadable ({type(error).__name__})"


EmbeddedBatch = list[tuple[Entry, np.ndarray, bool]]
"""(entry, unit vector, was indexed before) for each image of one encoder call."""


@dataclass(frozen=True)
class EmbedResult:
    added: int
    updated: int
    skipped: list[tuple[str, str]]
    failed_indexed: list[str]
    """Indexed before, unreadable now: their stale vectors must go."""


def embed_changes(
    folder: Path,
    plan: Plan,
    encoder: Embedder,
    store: Callable[[EmbeddedBatch], None],
    *,
    batch_size: int = 16,
    progress: bool = False,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> EmbedResult:
    """Decode and embed plan.to_embed in batches of batch_size, handing each batch to `store`.

    Every file goes through the one image intake with `limits`. Batches are filled with images that
    decoded, so unreadable files never leave an encoder call short; they are skipped and listed (with the
    intake's sentence), never fatal.
    """
    from tqdm import tqdm

    skipped: list[tuple[str, str]] = []
    failed_indexed: list[str] = []
    pending: list[tuple[Image.Image, Entry, bool]] = []
    counts = {True: 0, False: 0}  # was indexed before -> embedded now (updated / added)

    def flush() -> None:
        vectors = encoder.embed_images([image for image, _, _ in pending], batch_size=batch_size)
        batch = [
            (entry, vector, existed)
            for (_, entry, existed), vector in zip(pending, np.asarray(vectors, np.float32), strict=True)
        ]
        pending.clear()
        store(batch)
        for _, _, existed in batch:
            counts[existed] += 1

    with tqdm(
        total=len(plan.to_embed), desc="indexing", unit="img", file=sys.stderr, disable=not progress
    ) as bar:
        for relative, stat, existed in plan.to_embed:
            try:
                image, sha = open_image_file(folder / relative, limits)
            except Exception as error:  # any decoder failure on any file: skip it, never fatal
                skipped.append((relative, describe_failure(error)))
                if existed:
                    failed_indexed.append(relative)
            else:
                entry = Entry(relative, stat.st_size, stat.st_mtime_ns, sha, *image.size)
                pending.append((image, entry, existed))
                if len(pending) == batch_size:
                    flush()
            bar.update()
        if pending:
            flush()
    return EmbedResult(counts[False], counts[True], skipped, failed_indexed)
