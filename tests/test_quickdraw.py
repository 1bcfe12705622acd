"""Quick, Draw! ndjson reading, stroke rendering, synthetic sketches and the example sketches."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from outlyne.sketch.normalize import normalize
from outlyne_dev.quickdraw import QuickDrawSample, read_ndjson, render_strokes, synthetic_sketches

REPO = Path(__file__).resolve().parent.parent
SQUARE = [[[0, 100, 100, 0, 0], [0, 0, 100, 100, 0]]]


def record(word: str = "cat", drawing: object = SQUARE, **extra: object) -> str:
    return json.dumps({"word": word, "drawing": drawing, **extra})


# --------------------------------------------------------------------------------------------- reading


def test_read_ndjson_reports_malformed_lines_and_keeps_the_rest(tmp_path: Path) -> None:
    lines = [
        record(key_id="5678", countrycode="DE", recognized=True),
        "{not json",
        json.dumps({"word": "cat"}),
        "",  # blank lines are not problems
        json.dumps({"drawing": SQUARE}),
        record(drawing=[]),
        record(drawing=[[[0, 1, 2], [0, 1]]]),
        record(drawing=[[[0, "a"], [0, 1]]]),
        record(drawing=[[[0, True], [0, 1]]]),
        record(drawing=[[[0, 1e12], [0, 1]]]),
        record(drawing=[[[], []]]),
        record(drawing=[[0, 1]]),
        record(word=""),
        json.dumps([1, 2]),
        record(word="house", key_id=1234, drawing=[[[0, 5.6], [0, 7], [0, 10]]]),  # raw format: x, y, t
    ]
    path = tmp_path / "mixed.ndjson"
    path.write_text("\n".join(lines) + "\n")
    samples, problems = read_ndjson(path)
    assert samples == [
        QuickDrawSample(word="cat", strokes=[([0, 100, 100, 0, 0], [0, 0, 100, 100, 0])], key_id="5678"),
        QuickDrawSample(word="house", strokes=[([0, 6], [0, 7])], key_id="1234"),
    ]
    assert problems[0].startswith("line 2: not valid JSON")
    assert problems[1:] == [
        "line 3: missing 'drawing'",
        "line 5: missing 'word'",
        "line 6: 'drawing' is not a non-empty list of strokes",
        "line 7: stroke 1 has 3 x and 2 y coordinates",
        "line 8: stroke 1 has a coordinate that is not a number below 1e+06",
        "line 9: stroke 1 has a coordinate that is not a number below 1e+06",
        "line 10: stroke 1 has a coordinate that is not a number below 1e+06",
        "line 11: stroke 1 has no points",
        "line 12: stroke 1 is not [[x...], [y...]]",
        "line 13: 'word' is not a non-empty string",
        "line 14: not a JSON object",
    ]


def test_read_ndjson_limit_per_word_and_gzip(tmp_path: Path) -> None:
    lines = [record(word, key_id=str(i)) for i, word in enumerate(["cat", "dog", "cat", "cat", "dog"])]
    path = tmp_path / "animals.ndjson.gz"
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.write("\n".join(lines))
    samples, problems = read_ndjson(path, limit_per_word=2)
    assert problems == []
    assert [(s.word, s.key_id) for s in samples] == [("cat", "0"), ("dog", "1"), ("cat", "2"), ("dog", "4")]


def test_read_ndjson_survives_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bytes.ndjson"
    path.write_bytes(record().encode() + b"\n\xff\xfe{\n" + record("dog").encode() + b"\n")
    samples, problems = read_ndjson(path)
    assert [s.word for s in samples] == ["cat", "dog"]
    assert len(problems) == 1 and problems[0].startswith("line 2:")


# ------------------------------------------------------------------------------------------- rendering


def dark_box(image: np.ndarray, threshold: int = 128) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(image[:, :, 0] < threshold)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_render_strokes_is_antialiased_black_on_white_centred_in_the_padding() -> None:
    image = render_strokes([([10, 60], [200, 200]), ([10, 35, 60], [100, 50, 100])], size=256, padding=20)
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    assert (image[:, :, 0] == image[:, :, 1]).all() and (image[:, :, 1] == image[:, :, 2]).all()
    assert image.min() == 0 and image[0, 0, 0] == 255
    assert len(np.unique(image)) > 10  # antialiased edges, not a binary mask
    x0, y0, x1, y1 = dark_box(image)
    assert (x0 + x1) / 2 == pytest.approx(128, abs=2)  # centred
    assert y0 >= 20 - 2 and y1 <= 256 - 20 + 2  # the longer side fills the room inside the padding
    assert (y1 - y0) == pytest.approx(256 - 40, abs=3)
    assert (x1 - x0) == pytest.approx((256 - 40) / 3, abs=4)  # aspect ratio kept: 50 wide, 150 tall


def test_render_stroke_width_and_defaults_scale_with_size() -> None:
    thin = render_strokes(SQUARE, size=256, stroke_width=1)
    thick = render_strokes(SQUARE, size=256, stroke_width=8)
    assert (thick < 128).sum() > 4 * (thin < 128).sum()
    # Default stroke width ~ size / 85: count the dark pixels where a middle row crosses the two sides.
    for size, width in [(256, 3), (512, 6)]:
        middle_row = render_strokes(SQUARE, size=size)[size // 2, :, 0]
        assert (middle_row < 128).sum() == pytest.approx(2 * width, abs=2)


def test_render_taps_empty_input_and_degenerate_drawings() -> None:
    dot = render_strokes([([50], [50])], size=256)[:, :, 0]  # a 3 px round dot in the middle
    assert dot[128, 128] == 0 and 5 <= (dot < 128).sum() <= 16
    assert (render_strokes([], size=64) == 255).all()
    assert (render_strokes([([], [])], size=64) == 255).all()
    vertical = render_strokes([([5, 5], [0, 255])], size=64)  # zero width: scaled by height only
    assert dark_box(vertical)[2] - dark_box(vertical)[0] <= 5


def test_rendered_quickdraw_sample_normalizes() -> None:
    result = normalize(render_strokes(SQUARE, size=256))
    assert result.model_image.shape == (224, 224, 3)
    assert not result.inverted


# ----------------------------------------------------------------------------------- synthetic sketches


def test_synthetic_sketches_are_deterministic_varied_and_sketch_like() -> None:
    first = synthetic_sketches(np.random.default_rng(3), 12, size=128)
    again = synthetic_sketches(np.random.default_rng(3), 12, size=128)
    other = synthetic_sketches(np.random.default_rng(4), 12, size=128)
    assert len(first) == 12
    assert all(a.shape == (128, 128, 3) and a.dtype == np.uint8 for a in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    assert len({a.tobytes() for a in first}) == 12
    for image in first:
        ink = (image < 128).mean()
        assert 0.002 < ink < 0.5  # mostly paper, some lines
        assert normalize(image).model_image.shape == (224, 224, 3)


# --------------------------------------------------------------------------------------------- examples


def load_make_examples():
    spec = importlib.util.spec_from_file_location("make_examples", REPO / "scripts" / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_sketches_are_reproducible_from_the_script(tmp_path: Path) -> None:
    written = load_make_examples().main(tmp_path)
    assert 3 <= len(written) <= 5
    for path in written:
        committed = REPO / "examples" / path.name
        assert committed.is_file(), f"run `python scripts/make_examples.py`: {committed} is missing"
        image = np.asarray(Image.open(committed).convert("RGB"))
        assert image.shape == (512, 512, 3)
        np.testing.assert_array_equal(image, np.asarray(Image.open(path).convert("RGB")), err_msg=path.name)
        result = normalize(committed)
        assert not result.inverted and result.bbox is not None
