"""Galleries in Milvus, against real milvus-lite (embedded, a file per test) and the real tiny encoder:
incremental indexing, and search that ranks exactly as the numpy folder index does."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from outlyne.cli import index as index_command
from outlyne.cli import main
from outlyne.config import Config
from outlyne.errors import ConfigError, SearchUnavailable
from outlyne.search.galleries.folder import LocalGalleryBackend, index_folder
from outlyne.search.galleries.milvus import (
    WRITE_BATCH,
    MilvusGallery,
    MilvusGalleryBackend,
    index_into_milvus,
)
from outlyne.search.galleries.served import SERVED_PREFIX, open_served_image
from outlyne.search.types import SearchRequest
from outlyne.web.page import launch_options
from outlyne_dev.app_server import make_gallery


class CountingEncoder:
    """The real tiny encoder, counting the images it is asked to embed."""

    def __init__(self, encoder) -> None:
        self._encoder = encoder
        self.identity, self.embed_dim = encoder.identity, encoder.embed_dim
        self.images = 0

    def embed_images(self, images, batch_size=None):
        self.images += len(images)
        return self._encoder.embed_images(images, batch_size=batch_size)

    def embed_texts(self, texts):
        return self._encoder.embed_texts(texts)


@pytest.fixture
def gallery(tmp_path: Path) -> Path:
    folder = make_gallery(tmp_path / "photos", count=12)
    make_gallery(folder / "nested", count=3, seed=7)
    return folder


def _ranked(backend, query: np.ndarray, k: int = 50) -> list[tuple[str, float]]:
    results = backend.search(SearchRequest(query="", max_results=k, image_embedding=query))
    return [(result.image, result.similarity) for result in results]


def _assert_same_ranking(folder: Path, uri: str, encoder, query: np.ndarray) -> None:
    index_folder(folder, encoder)
    numpy_order = _ranked(LocalGalleryBackend(folder, encoder), query)
    milvus_order = _ranked(MilvusGalleryBackend(uri, encoder), query)
    assert [path for path, _ in milvus_order] == [path for path, _ in numpy_order]
    assert np.allclose([s for _, s in milvus_order], [s for _, s in numpy_order], atol=1e-5)


def _stored_paths(uri: str, encoder, folder: Path) -> set[str]:
    return set(MilvusGallery(uri, encoder.identity, encoder.embed_dim).entries(folder.resolve()))


def test_index_and_reindex_are_incremental_and_rank_like_numpy(
    gallery: Path, tmp_path: Path, tiny_encoder
) -> None:
    uri = str(tmp_path / "gallery.db")
    encoder = CountingEncoder(tiny_encoder)
    query = tiny_encoder.embed_images([np.asarray(Image.open(gallery / "drawing-04.png"))])[0]

    report = index_into_milvus(uri, gallery, encoder)
    assert (report.added, report.updated, report.removed, report.unchanged) == (15, 0, 0, 0)
    assert encoder.images == 15
    _assert_same_ranking(gallery, uri, tiny_encoder, query)

    again = index_into_milvus(uri, gallery, encoder)
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 15)
    assert encoder.images == 15  # nothing re-embedded

    # Add one, change one, delete one, touch one (same bytes, new mtime), break one.
    make_gallery(tmp_path / "more", count=1, seed=11)
    shutil.copy(tmp_path / "more" / "drawing-00.png", gallery / "nested" / "added.png")
    Image.open(gallery / "drawing-05.png").transpose(Image.Transpose.ROTATE_90).save(
        gallery / "drawing-02.png"
    )
    (gallery / "drawing-03.png").unlink()
    os.utime(gallery / "drawing-06.png", ns=(1_000_000_000, 1_000_000_000))
    (gallery / "drawing-07.png").write_bytes(b"not an image any more")
    encoder.images = 0
    changed = index_into_milvus(uri, gallery, encoder)
    assert (changed.added, changed.updated, changed.removed) == (1, 1, 1)
    assert changed.skipped and changed.skipped[0][0] == "drawing-07.png"
    assert encoder.images == 2  # the new and the changed file; the touched one kept its vector
    stored = _stored_paths(uri, tiny_encoder, gallery)
    assert "nested/added.png" in stored
    assert not {"drawing-03.png", "drawing-07.png"} & stored  # deleted, and now unreadable
    assert len(stored) == 14
    _assert_same_ranking(gallery, uri, tiny_encoder, query)

    touched = index_into_milvus(uri, gallery, encoder)
    assert (touched.added, touched.updated, touched.removed, touched.unchanged) == (0, 0, 0, 14)


def test_results_are_app_urls_served_from_indexed_images_only(
    gallery: Path, tmp_path: Path, tiny_encoder
) -> None:
    uri = str(tmp_path / "served.db")
    index_into_milvus(uri, gallery, tiny_encoder)
    (gallery / "notes.txt").write_text("not indexed, never served")
    backend = MilvusGalleryBackend(uri, tiny_encoder)
    query = tiny_encoder.embed_images([np.asarray(Image.open(gallery / "drawing-04.png"))])[0]
    results = backend.search(SearchRequest(query="", max_results=3, image_embedding=query))
    assert len(results) == 3
    for result in results:
        assert result.image == result.thumbnail == result.url and result.url.startswith(SERVED_PREFIX)
        assert str(tmp_path) not in result.url
    item_id = results[0].url[len(SERVED_PREFIX) :]
    expected = hashlib.sha256((gallery / results[0].title).read_bytes()).hexdigest()
    assert expected.startswith(item_id)
    served = open_served_image(results[0].url, 16)
    assert served is not None and max(served.size) <= 16 and served.mode == "RGB"
    assert backend.open_served("0" * len(item_id), 16) is None  # hex, but nothing indexed has it
    assert backend.open_served('x" or path like "%', 16) is None  # never reaches a filter expression
    options = launch_options(Config(search=f"milvus:{uri}"))
    assert all(str(gallery) not in path for path in options["allowed_paths"])


def test_writes_go_in_batches_of_a_thousand(gallery: Path, tmp_path: Path, tiny_encoder, monkeypatch) -> None:
    calls: list[int] = []
    original = MilvusGallery.call

    def counting(self, method, *args, **kwargs):
        if method in ("upsert", "delete"):
            calls.append(len(args[1] if method == "upsert" else kwargs["ids"]))
        return original(self, method, *args, **kwargs)

    monkeypatch.setattr(MilvusGallery, "call", counting)
    monkeypatch.setattr("outlyne.search.galleries.milvus.WRITE_BATCH", 4)
    index_into_milvus(str(tmp_path / "g.db"), gallery, tiny_encoder, batch_size=3)
    assert WRITE_BATCH == 1000
    assert sum(calls) == 15 and max(calls) <= 4 + 2  # a buffer flushes at 4, after an encoder batch of 3


def test_search_before_indexing_says_what_to_run(tmp_path: Path, tiny_encoder) -> None:
    backend = MilvusGalleryBackend(str(tmp_path / "empty.db"), tiny_encoder)
    with pytest.raises(SearchUnavailable, match="python -m outlyne index") as missing:
        backend.search(SearchRequest(query="", image_embedding=np.ones(tiny_encoder.embed_dim, np.float32)))
    assert str(tmp_path) not in str(missing.value)  # messages reach web users: no server path


def test_the_index_command_writes_to_milvus(
    gallery: Path, tmp_path: Path, tiny_encoder, monkeypatch, capsys
) -> None:
    database = tmp_path / "cli.db"
    monkeypatch.setenv("OUTLYNE_SEARCH", f"milvus:{database}")
    monkeypatch.setattr(index_command, "load_encoder", lambda: tiny_encoder)
    assert main(["index", str(gallery), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["added"] == 15 and report["gallery"] == f"milvus:{database}"
    assert not (gallery / ".outlyne").exists()  # the numpy index was not written


def test_milvus_addresses_are_validated() -> None:
    assert Config(search="milvus:/data/gallery.db").search == "milvus:/data/gallery.db"
    assert Config(search="milvus:http://10.0.0.5:19530").search
    for bad in ("milvus:", "milvus:/data/gallery", "milvus:ftp://host:1"):
        with pytest.raises(ConfigError, match="milvus"):
            Config(search=bad)


def test_a_lite_file_held_by_another_process_is_a_plain_error(
    gallery: Path, tmp_path: Path, tiny_encoder
) -> None:
    database = tmp_path / "held.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pymilvus import MilvusClient; c = MilvusClient(sys.argv[1]); "
            "print('holding', flush=True); sys.stdin.read()",
            str(database),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"  # it has the lock now
        with pytest.raises(SearchUnavailable, match="another process") as held:
            index_into_milvus(str(database), gallery, tiny_encoder)
        assert len(str(held.value).splitlines()) == 1 and str(tmp_path) not in str(held.value)
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
