"""Preprocessing matches the checkpoint's own HF image processor, and bad files fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from outlyne.errors import BadImage
from outlyne.model.calibration import sketch_images
from outlyne.model.preprocess import PreprocessSpec, load_image, preprocess, to_rgb


@pytest.fixture(scope="module")
def hf_processor(tiny_checkpoint: Path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_checkpoint).image_processor


def _inputs() -> dict[str, object]:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (41, 33, 4), dtype=np.uint8)
    gray = rng.integers(0, 256, (45, 60), dtype=np.uint8)
    palette = Image.fromarray(rgb).convert("P")
    palette.info["transparency"] = 0
    return {
        "pil-rgb": Image.fromarray(rgb),
        "numpy-rgb": rgb,
        "pil-rgba": Image.fromarray(rgba),
        "numpy-rgba": rgba,
        "pil-grayscale": Image.fromarray(gray),
        "numpy-grayscale-hw1": gray[:, :, None],
        "pil-palette-transparent": palette,
        "sketch-224": sketch_images(1, size=224, seed=5)[0],
        "exact-size": rgb[:32, :32],
    }


@pytest.mark.parametrize("name", list(_inputs()))
def test_pixels_match_the_hf_processor(hf_processor, tiny_checkpoint: Path, name: str) -> None:
    image = _inputs()[name]
    expected = hf_processor(images=[image], return_tensors="np")["pixel_values"]
    got = preprocess([image], PreprocessSpec.from_checkpoint(tiny_checkpoint))
    assert got.dtype == np.float32
    assert got.shape == expected.shape == (1, 3, 32, 32)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_numpy_grayscale_2d_equals_pil_grayscale(tiny_checkpoint: Path) -> None:
    gray = np.random.default_rng(4).integers(0, 256, (40, 40), dtype=np.uint8)
    spec = PreprocessSpec.from_checkpoint(tiny_checkpoint)
    np.testing.assert_array_equal(preprocess([gray], spec), preprocess([Image.fromarray(gray)], spec))


def test_the_checkpoint_resample_filter_and_statistics_are_followed(tmp_path: Path) -> None:
    """A legacy preprocessor_config.json with another filter, size and mean/std (CLIP-like)."""
    from transformers import SiglipImageProcessorPil

    settings = {
        "size": {"height": 24, "width": 40},
        "resample": 2,
        "image_mean": [0.48, 0.45, 0.40],
        "image_std": [0.26, 0.26, 0.27],
    }
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(settings))
    spec = PreprocessSpec.from_checkpoint(tmp_path)
    assert (spec.height, spec.width, spec.resample) == (24, 40, 2)
    hf = SiglipImageProcessorPil(**settings)
    image = Image.fromarray(np.random.default_rng(6).integers(0, 256, (90, 64, 3), dtype=np.uint8))
    expected = hf(images=[image], return_tensors="np")["pixel_values"]
    np.testing.assert_allclose(preprocess([image], spec), expected, atol=1e-5)


def test_spec_round_trips_through_a_dict(tiny_checkpoint: Path) -> None:
    spec = PreprocessSpec.from_checkpoint(tiny_checkpoint)
    assert PreprocessSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_missing_processor_config_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        PreprocessSpec.from_checkpoint(tmp_path)


def test_transparent_pixels_become_white() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent black
    assert (to_rgb(rgba) == 255).all()
    assert (to_rgb(Image.fromarray(rgba)) == 255).all()


def test_empty_batch_has_the_right_shape(tiny_checkpoint: Path) -> None:
    assert preprocess([], PreprocessSpec.from_checkpoint(tiny_checkpoint)).shape == (0, 3, 32, 32)


@pytest.mark.parametrize("shape", [(4, 4, 2), (4, 4, 5), (0, 4, 3), (4,)])
def test_arrays_of_the_wrong_shape_are_bad_images(shape: tuple[int, ...]) -> None:
    with pytest.raises(BadImage):
        to_rgb(np.zeros(shape, np.uint8))


def test_corrupt_and_non_image_files_are_bad_images(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    Image.fromarray(sketch_images(1, size=64)[0]).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.jpg"
    text.write_text("not an image at all")
    assert load_image(good).size == (64, 64)
    for path in (truncated, text, tmp_path / "missing.png", tmp_path):
        with pytest.raises(BadImage, match=path.name):
            load_image(path)


def test_calibration_sketches_are_deterministic_dark_ink_on_white() -> None:
    first, second = sketch_images(4, size=96, seed=11), sketch_images(4, size=96, seed=11)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not np.array_equal(first[0], sketch_images(1, size=96, seed=12)[0])
    for image in first:
        assert image.shape == (96, 96, 3) and image.dtype == np.uint8
        assert np.median(image) == 255  # mostly white paper
        assert image.min() < 100  # some dark ink
