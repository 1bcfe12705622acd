"""Local gallery: incremental indexing (add, change, delete, touch), skipped files, exact search, the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import outlyne.cli.index as index_command
from outlyne.cli import main
from outlyne.errors import SearchUnavailable
from outlyne.search.galleries.folder import GalleryIndex, LocalGalleryBackend, index_folder
from outlyne.search.types import SearchRequest
from outlyne_dev.search_bench import encode_image, measure_local_search, synthetic_thumbnails
from tests.support.fakes import ColourEncoder, FakeEncoder

PICTURES = synthetic_thumbnails(6, seed=3)


def write(folder: Path, relative: str, image: Image.Image, format: str = "PNG") -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_image(image, format))
    return path


@pytest.fixture
def gallery(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    write(folder, "a.png", PICTURES[0])
    write(folder, "b.JPG", PICTURES[1], "JPEG")
    write(folder, "nested/deeper/c.webp", PICTURES[2], "WEBP")
    write(folder, "d.gif", PICTURES[3], "GIF")
    write(folder, "e.bmp", PICTURES[4], "BMP")
    (folder / "notes.txt").write_text("not an image, not even looked at")
    (folder / "broken.png").write_bytes(encode_image(PICTURES[5])[:60])  # truncated
    (folder / "text.jpg").write_text("a text file with an image name")
    return folder


def rows_by_path(folder: Path, identity: str = "fake-encoder") -> dict[str, np.ndarray]:
    index = GalleryIndex.load(folder, identity)
    return dict(zip(index.paths, index.embeddings, strict=True))


def test_first_run_embeds_every_image_and_lists_unreadable_ones(gallery: Path) -> None:
    encoder = FakeEncoder()
    report = index_folder(gallery, encoder, batch_size=2)
    assert (report.added, report.updated, report.removed, report.unchanged) == (5, 0, 0, 0)
    assert sorted(path for path, _ in report.skipped) == ["broken.png", "text.jpg"]
    assert all(reason for _, reason in report.skipped)
    assert encoder.images_embedded == 5
    assert encoder.image_calls == 3  # batches of 2, 2, 1 (the unreadable files never reach the encoder)

    rows = rows_by_path(gallery)
    assert sorted(rows) == ["a.png", "b.JPG", "d.gif", "e.bmp", "nested/deeper/c.webp"]
    expected = FakeEncoder().embed_images([Image.open(gallery / "a.png")])[0]
    np.testing.assert_allclose(rows["a.png"], expected, atol=1e-6)
    index_files = sorted(p.name for p in (gallery / ".outlyne").iterdir() if p.name != ".lock")
    assert len(index_files) == 2 and "manifest.json" in index_files  # no temporary files left behind


def test_updates_are_incremental(gallery: Path) -> None:
    index_folder(gallery, FakeEncoder())
    before = rows_by_path(gallery)

    encoder = FakeEncoder()
    again = index_folder(gallery, encoder)
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 5)
    assert encoder.images_embedded == 0

    # touched (new mtime, same bytes): not re-embedded
    stat = (gallery / "a.png").stat()
    os.utime(gallery / "a.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    # changed content, new file, deleted file, and an image inside .outlyne that must be ignored
    write(gallery, "b.JPG", PICTURES[5], "JPEG")
    write(gallery, "nested/new.png", PICTURES[0].rotate(90))
    (gallery / "d.gif").unlink()
    write(gallery, ".outlyne/stray.png", PICTURES[0])

    encoder = FakeEncoder()
    report = index_folder(gallery, encoder)
    assert (report.added, report.updated, report.removed, report.unchanged) == (1, 1, 1, 3)
    assert encoder.images_embedded == 2

    after = rows_by_path(gallery)
    assert sorted(after) == ["a.png", "b.JPG", "e.bmp", "nested/deeper/c.webp", "nested/new.png"]
    np.testing.assert_array_equal(after["a.png"], before["a.png"])
    assert not np.allclose(after["b.JPG"], before["b.JPG"])

    encoder = FakeEncoder()
    settled = index_folder(gallery, encoder)  # the touch was recorded: nothing left to look at
    assert (settled.unchanged, encoder.images_embedded) == (5, 0)


def test_a_file_that_becomes_unreadable_loses_its_row(gallery: Path) -> None:
    index_folder(gallery, FakeEncoder())
    (gallery / "e.bmp").write_bytes(b"BM garbage")
    report = index_folder(gallery, FakeEncoder())
    assert ("e.bmp" in dict(report.skipped)) and "e.bmp" not in rows_by_path(gallery)


class FailingEncoder(FakeEncoder):
    """Dies on its second call, like a run interrupted half-way."""

    def embed_images(self, images, batch_size=None):
        if self.image_calls == 1:
            raise KeyboardInterrupt
        return super().embed_images(images, batch_size)


def test_an_interrupted_run_keeps_its_checkpoint(gallery: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        index_folder(gallery, FailingEncoder(), batch_size=2, checkpoint_seconds=0)
    assert sorted(rows_by_path(gallery)) == ["a.png", "b.JPG"]
    encoder = FakeEncoder()
    report = index_folder(gallery, encoder, batch_size=2)
    assert (report.added, report.unchanged, encoder.images_embedded) == (3, 2, 3)


def test_another_encoder_rebuilds_and_a_stale_index_is_refused(gallery: Path) -> None:
    index_folder(gallery, FakeEncoder())
    with pytest.raises(SearchUnavailable, match=r"another model.*python -m outlyne index"):
        GalleryIndex.load(gallery, "some-other-model")
    other = FakeEncoder(embed_dim=8, identity="some-other-model")
    report = index_folder(gallery, other)
    assert (report.added, other.images_embedded) == (5, 5)
    assert GalleryIndex.load(gallery, "some-other-model").embeddings.shape == (5, 8)


def test_missing_or_damaged_index_is_search_unavailable(tmp_path: Path) -> None:
    with pytest.raises(SearchUnavailable, match=r"no image index yet; run `python -m outlyne index"):
        GalleryIndex.load(tmp_path, "fake-encoder")
    (tmp_path / ".outlyne").mkdir()
    (tmp_path / ".outlyne" / "manifest.json").write_text("{not json")
    with pytest.raises(SearchUnavailable, match="unreadable"):
        GalleryIndex.load(tmp_path, "fake-encoder")
    report = index_folder(tmp_path, FakeEncoder())  # a damaged index is rebuilt, not fatal
    assert report.added == 0 and len(GalleryIndex.load(tmp_path, "fake-encoder")) == 0


def test_nearest_is_exact_on_a_known_set() -> None:
    rows = np.array([[1, 0, 0], [0.8, 0.6, 0], [0, 1, 0], [0, 0, 1], [0.6, 0, 0.8]], np.float32)
    index = GalleryIndex(Path("/g"), ["a", "b", "c", "d", "e"], rows)
    assert index.nearest(np.array([1, 0, 0]), k=3) == [
        ("a", pytest.approx(1.0)),
        ("b", pytest.approx(0.8)),
        ("e", pytest.approx(0.6)),
    ]
    assert [p for p, _ in index.nearest(np.array([0, 0, 1]), k=10)] == ["d", "e", "a", "b", "c"]
    # text blend: 0.5 * image (x axis) + 0.5 * text (y axis) puts b (0.7) above a and c (0.5)
    blended = index.nearest(np.array([1, 0, 0]), k=2, text_embedding=np.array([0, 1, 0]), text_weight=0.5)
    assert blended == [("b", pytest.approx(0.7)), ("a", pytest.approx(0.5))]
    # text alone ranks when there is no image
    assert index.nearest(None, k=1, text_embedding=np.array([0, 1, 0]))[0][0] == "c"
    assert index.nearest(np.array([1, 0, 0]), k=0) == []


def test_nearest_matches_brute_force_on_random_rows() -> None:
    rng = np.random.default_rng(1)
    rows = rng.standard_normal((500, 16)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    index = GalleryIndex(Path("/g"), [str(i) for i in range(500)], rows)
    query = rows[123] + 0.1 * rows[7]
    expected = np.argsort(-(rows @ query), kind="stable")[:20]
    assert [int(p) for p, _ in index.nearest(query, k=20)] == expected.tolist()


def test_local_backend_returns_app_urls_ranked_and_sees_a_reindex(gallery: Path) -> None:
    encoder = FakeEncoder()
    index_folder(gallery, encoder)
    backend = LocalGalleryBackend(gallery, encoder)
    sketch = encoder.embed_images([PICTURES[2]])[0]
    results = backend.search(SearchRequest("", max_results=3, image_embedding=sketch))
    assert len(results) == 3
    first = results[0]
    # An app URL with a stable id (the start of the file's hash), never the server path.
    assert first.thumbnail == first.image == first.url
    assert first.thumbnail.startswith("/outlyne/gallery/") and str(gallery) not in first.thumbnail
    served = backend.open_served(first.thumbnail.rsplit("/", 1)[1], max_side=16)
    assert served is not None and max(served.size) == 16
    assert (first.engine_rank, first.source, first.title) == (0, "local", "c.webp")
    assert (first.width, first.height) == PICTURES[2].size
    assert first.similarity == pytest.approx(1.0, abs=1e-3)
    assert [r.engine_rank for r in results] == [0, 1, 2]
    assert results[0].similarity >= results[1].similarity >= results[2].similarity

    (gallery / "nested/deeper/c.webp").unlink()
    index_folder(gallery, encoder)
    again = backend.search(SearchRequest("", max_results=3, image_embedding=sketch))
    assert all(r.title != "c.webp" for r in again)
    assert backend.open_served(first.thumbnail.rsplit("/", 1)[1], max_side=16) is None


def test_local_backend_without_index_is_search_unavailable(tmp_path: Path) -> None:
    backend = LocalGalleryBackend(tmp_path, FakeEncoder())
    with pytest.raises(SearchUnavailable, match="python -m outlyne index"):
        backend.search(SearchRequest("cat", image_embedding=np.ones(24, np.float32)))


def test_cli_index_json(gallery: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    encoder = FakeEncoder()
    monkeypatch.setattr(index_command, "load_encoder", lambda: encoder)
    assert main(["index", str(gallery), "--json", "--batch-size", "4"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["added"], report["updated"], report["removed"], report["unchanged"]) == (5, 0, 0, 0)
    assert {item["path"] for item in report["skipped"]} == {"broken.png", "text.jpg"}
    assert report["encoder"] == "fake-encoder"
    assert encoder.image_calls == 2  # 5 images in batches of 4

    assert main(["index", str(gallery)]) == 0
    out = capsys.readouterr().out
    assert "5 images indexed (0 added, 0 updated, 0 removed, 5 unchanged)" in out
    assert "skipped broken.png" in out


def test_cli_index_of_a_missing_folder_is_a_one_line_error(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(index_command, "load_encoder", FakeEncoder)
    assert main(["index", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_local_backend_blends_text_by_the_request_weight(tmp_path: Path) -> None:
    # Three images whose ColourEncoder vectors are the x axis, the y axis and their bisector
    palette = {(255, 0, 0): [1, 0, 0], (0, 255, 0): [0, 1, 0], (0, 0, 255): [1, 1, 0]}
    for name, colour in (("x.png", (255, 0, 0)), ("y.png", (0, 255, 0)), ("xy.png", (0, 0, 255))):
        write(tmp_path, name, Image.new("RGB", (8, 8), colour))
    encoder = ColourEncoder(palette)
    index_folder(tmp_path, encoder)
    backend = LocalGalleryBackend(tmp_path, encoder, text_weight=0.0)
    x, y = np.array([1, 0, 0], np.float32), np.array([0, 1, 0], np.float32)

    def titles(**kwargs) -> list[str]:
        return [r.title for r in backend.search(SearchRequest("q", image_embedding=x, **kwargs))]

    assert titles(text_embedding=y) == ["x.png", "xy.png", "y.png"]  # backend default 0: text ignored
    assert titles(text_embedding=y, text_weight=0.5)[0] == "xy.png"
    assert titles(text_embedding=y, text_weight=1.0)[0] == "y.png"
    with pytest.raises(ValueError, match="text_weight"):
        SearchRequest("q", text_weight=1.5)


def test_local_search_bench_reports_timings() -> None:
    report = measure_local_search(rows=2000, dim=32, k=5, repeats=3)
    assert report["rows"] == 2000 and report["image_query_ms"] > 0
    json.dumps(report)
