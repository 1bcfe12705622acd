"""Caches that cannot lie (issue 11): a flipped bit is found, reported and rebuilt, never used; runs that
overlap take turns; a killed export leaves nothing behind for long."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock, Timeout
from PIL import Image

from outlyne.errors import SearchUnavailable
from outlyne.model import ir_cache
from outlyne.search.galleries.folder import INDEX_DIR, LOCK, MANIFEST, LocalGalleryBackend, index_folder
from outlyne.search.types import SearchRequest

from .support.fakes import FakeEncoder
from .support.outlyne_cli import ROOT, tiny_env


@pytest.fixture
def gallery(tmp_path: Path) -> Path:
    folder = tmp_path / "gallery"
    folder.mkdir()
    for number, colour in enumerate(("red", "green", "blue", "black", "white")):
        Image.new("RGB", (40, 30), colour).save(folder / f"{number}.png")
    return folder


def _embeddings_file(folder: Path) -> Path:
    manifest = json.loads((folder / INDEX_DIR / MANIFEST).read_text())
    return folder / INDEX_DIR / manifest["embeddings"]


def test_a_flipped_bit_in_gallery_embeddings_is_found_reported_and_rebuilt(gallery: Path) -> None:
    encoder = FakeEncoder()
    index_folder(gallery, encoder)
    backend = LocalGalleryBackend(gallery, encoder)
    query = SearchRequest(
        "", max_results=5, image_embedding=encoder.embed_images([np.zeros((8, 8, 3), np.uint8)])[0]
    )
    before = [(r.url, r.similarity) for r in backend.search(query)]

    path = _embeddings_file(gallery)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # a float's low bits: the array still loads, with a wrong value
    path.write_bytes(bytes(data))
    with pytest.raises(SearchUnavailable) as caught:
        LocalGalleryBackend(gallery, encoder).search(query)
    assert "do not match their checksum" in str(caught.value)
    assert str(gallery) not in str(caught.value)

    report = index_folder(gallery, encoder)
    assert report.rebuilt is not None and "checksum" in report.rebuilt
    assert report.added == 5
    assert [(r.url, r.similarity) for r in LocalGalleryBackend(gallery, encoder).search(query)] == before


class _HeldEncoder(FakeEncoder):
    """Blocks inside embed_images until released, so a test can look at the world mid-run."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = threading.Event()
        self.release = threading.Event()

    def embed_images(self, images, batch_size=None):
        self.inside.set()
        assert self.release.wait(60)
        return super().embed_images(images, batch_size)


def test_index_runs_on_one_folder_take_turns(gallery: Path) -> None:
    held = _HeldEncoder()
    first = threading.Thread(target=index_folder, args=(gallery, held))
    first.start()
    try:
        assert held.inside.wait(60)
        with pytest.raises(Timeout):  # the running index holds the folder's lock
            FileLock(gallery / INDEX_DIR / LOCK).acquire(timeout=0)
        (gallery / "9.png").write_bytes((gallery / "0.png").read_bytes())
        second = threading.Thread(target=index_folder, args=(gallery, FakeEncoder()))
        second.start()
    finally:
        held.release.set()
        first.join(60)
    second.join(60)
    # Whatever the order, the index is whole: every row has its embedding file, every image is in it.
    report = index_folder(gallery, FakeEncoder())
    assert report.rebuilt is None and report.added == 0 and report.unchanged == 6


def _export(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "outlyne", "export", "--json"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_kill_9_during_export_then_two_exports_at_once(tiny_checkpoint: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = tiny_env(tiny_checkpoint, cache)
    killed = _export(env)
    deadline = time.monotonic() + 300
    while not list((cache / "ir").glob(".staging-*")) and killed.poll() is None:
        assert time.monotonic() < deadline, "no staging folder appeared"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    assert list((cache / "ir").glob(".staging-*")), "the killed run left its staging folder"

    runs = [_export(env), _export(env)]
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (stdout, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr
        json.loads(stdout)  # stdout is the JSON and nothing else, cold cache included
    assert not list((cache / "ir").glob(".staging-*")) and not list((cache / "ir").glob(".trash-*"))
    (published,) = [p for p in (cache / "ir").iterdir() if not p.name.startswith(".")]
    ir_cache.read_manifest(published, full=True)
    assert any("left by an export that did not finish" in stderr for _, stderr in outputs)
