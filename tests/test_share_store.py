"""The share store: what a share keeps, its caps, oldest-first eviction, ids and expiry (no server)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from outlyne.concepts.file import ConceptScore
from outlyne.config import Config
from outlyne.errors import ShareUnavailable
from outlyne.search.types import SearchResult
from outlyne.web.share_store import (
    SHARE_ID,
    SKETCH_SIDE,
    SharedRun,
    ShareLimits,
    ShareStore,
    resolve_results,
    shareable_results,
    sketch_png,
)

DAY = 86400.0


class Clock:
    """A clock the test moves by hand: ages and eviction order without sleeping."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def drawing(side: int = 384) -> np.ndarray:
    image = np.full((side, side, 3), 255, np.uint8)
    image[side // 4 : side * 3 // 4, side // 4 : side // 4 + 6] = 0  # a vertical stroke
    image[side // 4 : side // 4 + 6, side // 4 : side * 3 // 4] = 0  # a horizontal one
    return image


def a_run(results: int = 3, title: str = "a house") -> SharedRun:
    return SharedRun(
        sketch_png=sketch_png(drawing()),
        concepts=(ConceptScore("house", "objects", 0.8, 0.12), ConceptScore("barn", "objects", 0.1, 0.05)),
        query="house line drawing",
        results=tuple(
            SearchResult(
                title=f"{title} {n}",
                thumbnail=f"https://images.example/t{n}.jpg",
                image=f"https://images.example/{n}.jpg",
                url=f"https://pages.example/{n}",
                source="example",
                similarity=0.5 - n / 100,
                licence="CC BY 4.0" if n == 0 else None,
                licence_url="https://creativecommons.org/licenses/by/4.0/" if n == 0 else None,
                creator="Ann Smith" if n == 0 else None,
            )
            for n in range(results)
        ),
        backend="ddg",
        searched=True,
        reranked=True,
    )


def limits(**changes: float) -> ShareLimits:
    values = dict(max_share_bytes=64 * 1024, max_total_bytes=1024 * 1024, max_age_s=30 * DAY)
    values.update(changes)
    return ShareLimits(**values)


def test_a_share_comes_back_as_it_was_stored(tmp_path: Path) -> None:
    store = ShareStore(tmp_path, limits())
    run = a_run()
    assert store.load(store.save(run)) == run


def test_the_sketch_is_a_small_grayscale_png_of_the_normalized_drawing() -> None:
    png = sketch_png(drawing())
    run = a_run()
    image = run.sketch_image()
    assert png.startswith(b"\x89PNG")
    assert len(png) < 8 * 1024
    assert image.shape == (SKETCH_SIDE, SKETCH_SIDE, 3)
    # The ink is still where it was drawn (a quarter in), at the stored size.
    quarter = SKETCH_SIDE // 4
    assert image[quarter + 40, quarter + 2].max() < 80
    assert image[SKETCH_SIDE - 5, SKETCH_SIDE - 5].min() > 240


def test_ids_are_random_url_safe_and_never_repeat(tmp_path: Path) -> None:
    store = ShareStore(tmp_path, limits())
    ids = {store.save(a_run(results=0)) for _ in range(50)}
    assert len(ids) == 50
    for share_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", share_id)  # 128 random bits
        assert SHARE_ID.fullmatch(share_id)
    # The file name is the id and nothing else: no content hash, no counter to walk.
    assert {path.stem for path in tmp_path.glob("*.json")} == ids


@pytest.mark.parametrize(
    "share_id",
    ["", "short", "../../etc/passwd", "a" * 65, "abc/def" * 4, "%2e%2e%2fabcdefghijk", "ok" * 8 + ".json"],
)
def test_malformed_ids_are_refused_before_touching_the_disk(tmp_path: Path, share_id: str) -> None:
    store = ShareStore(tmp_path / "shares", limits())
    with pytest.raises(ShareUnavailable, match="not available"):
        store.load(share_id)
    assert not (tmp_path / "shares").exists()


def test_an_unknown_id_is_one_plain_sentence(tmp_path: Path) -> None:
    store = ShareStore(tmp_path, limits())
    with pytest.raises(ShareUnavailable) as caught:
        store.load("A" * 22)
    message = str(caught.value)
    assert message == "This shared drawing is not available: the link is wrong or has expired."
    assert str(tmp_path) not in message


def test_a_share_expires_after_its_age_and_its_file_goes(tmp_path: Path) -> None:
    clock = Clock()
    store = ShareStore(tmp_path, limits(max_age_s=7 * DAY), clock=clock)
    share_id = store.save(a_run())
    clock.now += 7 * DAY - 1
    assert store.load(share_id).query == "house line drawing"
    clock.now += 2
    with pytest.raises(ShareUnavailable):
        store.load(share_id)
    assert not list(tmp_path.glob("*.json"))


def test_a_run_over_the_per_share_cap_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    store = ShareStore(tmp_path, limits(max_share_bytes=4 * 1024))
    with pytest.raises(ShareUnavailable, match="too large to share"):
        store.save(a_run(results=60, title="x" * 200))
    assert store.usage() == (0, 0)


def test_many_shares_evict_the_oldest_and_the_folder_stays_under_its_cap(tmp_path: Path) -> None:
    clock = Clock()
    one_share = len(json.dumps(a_run().to_json(), separators=(",", ":")))
    cap = one_share * 10 + one_share // 2  # room for ten shares, not eleven
    store = ShareStore(tmp_path, limits(max_total_bytes=cap), clock=clock)
    ids = []
    for _ in range(25):
        clock.now += 1
        ids.append(store.save(a_run()))
        count, total = store.usage()
        assert total <= cap
    assert count == 10
    for evicted in ids[:15]:
        with pytest.raises(ShareUnavailable):
            store.load(evicted)
    for kept in ids[15:]:
        assert store.load(kept).concepts[0].label == "house"


def test_expired_shares_are_cleared_when_a_new_one_is_saved(tmp_path: Path) -> None:
    clock = Clock()
    store = ShareStore(tmp_path, limits(max_age_s=DAY), clock=clock)
    old = [store.save(a_run()) for _ in range(3)]
    clock.now += 2 * DAY
    new = store.save(a_run())
    assert {path.stem for path in tmp_path.glob("*.json")} == {new}
    assert new not in old


def test_a_damaged_or_oversized_file_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    store = ShareStore(tmp_path, limits(max_share_bytes=8 * 1024))
    share_id = store.save(a_run())
    path = tmp_path / f"{share_id}.json"
    path.write_text("{not json")
    with pytest.raises(ShareUnavailable):
        store.load(share_id)
    path.write_text(json.dumps({**a_run().to_json(), "query": "q" * 9000}))
    with pytest.raises(ShareUnavailable):  # larger than the per-share cap: never parsed
        store.load(share_id)
    data = a_run().to_json()
    data["results"][0]["thumbnail"] = "file:///etc/passwd"
    path.write_text(json.dumps(data))
    with pytest.raises(ShareUnavailable):  # only web links and gallery app URLs are accepted back
        store.load(share_id)


def test_gallery_results_are_stored_by_their_app_urls_and_server_paths_never(tmp_path: Path) -> None:
    served = "/outlyne/gallery/0123456789abcdef"
    secret = tmp_path / "secret.png"
    results = [
        SearchResult("cat", served, served, served, "local", similarity=0.9),
        SearchResult("secret", str(secret), str(secret), secret.as_uri(), "local", similarity=0.8),
        SearchResult("web", "https://t.example/1.jpg", "https://i.example/1.jpg", "https://p.example", "ddg"),
        SearchResult("ftp", "ftp://t.example/1.jpg", "", "", "ddg"),
        SearchResult("mixed", "https://t.example/2.jpg", str(secret), secret.as_uri(), "ddg"),
    ]
    kept = shareable_results(results)
    assert [r.title for r in kept] == ["cat", "web", "mixed"]
    assert kept[0].thumbnail == kept[0].image == kept[0].url == served
    assert (kept[2].image, kept[2].url) == ("", "")  # a path or a file:// page is dropped, not stored
    assert str(tmp_path) not in json.dumps([r.__dict__ for r in kept])


def test_a_gallery_result_this_server_no_longer_serves_is_left_out(tmp_path: Path) -> None:
    gone, here = "/outlyne/gallery/aaaaaaaaaaaaaaaa", "/outlyne/gallery/bbbbbbbbbbbbbbbb"
    results = [
        SearchResult("gone", gone, gone, gone, "local"),
        SearchResult("here", here, here, here, "local"),
        SearchResult("web", "https://t.example/1.jpg", "https://i.example/1.jpg", "https://p.example", "ddg"),
    ]
    asked: list[str] = []

    def served(url: str) -> bool:
        asked.append(url)
        return url == here

    assert [r.title for r in resolve_results(results, served)] == ["here", "web"]
    assert "https://t.example/1.jpg" not in asked  # web links are never looked up


@pytest.mark.parametrize(
    "link",
    [
        "/outlyne/gallery/../secret.png",
        "/outlyne/gallery/a/b",
        "/outlyne/gallery/",
        "/etc/passwd",
        "gallery:cats/01.png",
        "javascript:alert(1)",
    ],
)
def test_only_well_formed_gallery_urls_are_accepted_back(tmp_path: Path, link: str) -> None:
    store = ShareStore(tmp_path / "shares", limits())
    share_id = store.save(a_run())
    data = a_run().to_json()
    data["results"][0]["thumbnail"] = link
    (tmp_path / "shares" / f"{share_id}.json").write_text(json.dumps(data))
    with pytest.raises(ShareUnavailable):
        store.load(share_id)


def test_the_caps_come_from_the_one_config() -> None:
    config = Config(share_max_bytes=1000, share_total_bytes=50_000, share_max_age_days=2)
    assert ShareLimits.from_config(config) == ShareLimits(1000, 50_000, 2 * DAY)
