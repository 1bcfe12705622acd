"""Sketch normalization: polarity, crop, thin strokes vs speckle, Sketchpad values, bad and odd inputs."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from outlyne.errors import BadImage, EmptySketch
from outlyne.sketch.normalize import NormalizedSketch, NormalizeOptions, load_rgb, normalize

DEFAULTS = NormalizeOptions()
ALL_OFF = NormalizeOptions(polarity=False, denoise=False, contrast=False, crop=False)


def canvas(height: int = 600, width: int = 800, value: int = 255) -> np.ndarray:
    return np.full((height, width, 3), value, np.uint8)


def house_drawing() -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Black-on-white line drawing inside a known box (x0, y0, x1, y1), exclusive end."""
    image = canvas()
    cv2.rectangle(image, (250, 250), (550, 480), (0, 0, 0), 4, cv2.LINE_AA)
    cv2.polylines(image, [np.array([[250, 250], [400, 120], [550, 250]])], False, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.circle(image, (330, 330), 25, (0, 0, 0), 3, cv2.LINE_AA)
    return image, (248, 118, 553, 483)


def ink_box(gray: np.ndarray, threshold: int = 128) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(gray < threshold)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


def assert_valid(result: NormalizedSketch, options: NormalizeOptions = DEFAULTS) -> None:
    assert result.model_image.shape == (options.model_side, options.model_side, 3)
    assert result.display_image.shape == (options.display_side, options.display_side, 3)
    assert result.model_image.dtype == result.display_image.dtype == np.uint8
    assert isinstance(result.inverted, bool)


# ------------------------------------------------------------------------------------------- polarity


def test_black_on_white_and_white_on_black_normalize_to_the_same_image() -> None:
    drawing, _ = house_drawing()
    dark_on_light = normalize(drawing)
    light_on_dark = normalize(255 - drawing)
    assert not dark_on_light.inverted
    assert light_on_dark.inverted
    np.testing.assert_array_equal(dark_on_light.model_image, light_on_dark.model_image)
    np.testing.assert_array_equal(dark_on_light.display_image, light_on_dark.display_image)
    assert dark_on_light.bbox == light_on_dark.bbox
    # Dark ink on white: corners are background, and real ink reaches black.
    assert dark_on_light.model_image[0, 0].tolist() == [255, 255, 255]
    assert dark_on_light.model_image.min() == 0


def test_a_big_dark_blob_on_white_is_not_flipped() -> None:
    image = canvas()
    cv2.ellipse(image, (400, 300), (380, 280), 0, 0, 360, (0, 0, 0), -1)  # most of the canvas is ink
    assert (image < 128).mean() > 0.6
    result = normalize(image)
    assert not result.inverted
    assert result.model_image[112, 112, 0] == 0  # the blob stays dark


def test_black_ink_on_dark_grey_paper_is_not_flipped() -> None:
    # Polarity is relative to the background, not to mid-grey: paper at 110 is still "light" for black ink.
    image = canvas(value=110)
    cv2.line(image, (100, 100), (700, 500), (0, 0, 0), 5, cv2.LINE_AA)
    result = normalize(image)
    assert not result.inverted
    assert result.model_image[0, 0, 0] == 255  # contrast stretch made the paper white


def test_polarity_off_keeps_light_ink_on_dark() -> None:
    drawing, _ = house_drawing()
    result = normalize(255 - drawing, NormalizeOptions(polarity=False))
    assert not result.inverted
    assert result.model_image[0, 0].tolist() == [0, 0, 0]
    assert result.model_image.max() == 255


def test_coloured_ink_counts_as_ink() -> None:
    # Yellow has luminance 226/255: a plain grayscale conversion would call this canvas empty.
    image = canvas()
    cv2.circle(image, (400, 300), 120, (255, 255, 0), 5, cv2.LINE_AA)
    result = normalize(image)
    assert iou(result.bbox, (278, 178, 523, 423)) >= 0.9
    assert result.model_image.min() == 0


# ------------------------------------------------------------------------------------------------ crop


def test_crop_box_matches_the_drawn_shape() -> None:
    drawing, known = house_drawing()
    result = normalize(drawing)
    assert iou(result.bbox, known) >= 0.9
    # In the model image the drawing is centred and fills the square up to the margin.
    box = ink_box(result.model_image[:, :, 0])
    side = 224 / (1 + 2 * NormalizeOptions().margin)
    assert max(box[2] - box[0], box[3] - box[1]) == pytest.approx(side, abs=4)
    assert (box[0] + box[2]) / 2 == pytest.approx(112, abs=3)
    assert (box[1] + box[3]) / 2 == pytest.approx(112, abs=3)


def test_crop_near_the_edge_pads_with_background() -> None:
    image = canvas()
    cv2.rectangle(image, (0, 0), (60, 400), (0, 0, 0), 3)  # touches the top-left corner, tall and thin
    result = normalize(image)
    assert iou(result.bbox, (0, 0, 62, 402)) >= 0.9
    model = result.model_image[:, :, 0]
    assert model[:, :40].min() == 255  # the square's left part is padding (white), not clipped ink
    assert model.min() == 0


def test_crop_off_pads_the_whole_image_to_a_square() -> None:
    drawing, known = house_drawing()
    result = normalize(drawing, NormalizeOptions(crop=False))
    assert iou(result.bbox, known) >= 0.9
    model = result.model_image[:, :, 0]
    # 800x600 padded to 800x800: the drawing keeps its place, scaled by 224/800, shifted down by 100 px.
    expected = tuple(round(v * 224 / 800) for v in (known[0], known[1] + 100, known[2], known[3] + 100))
    assert iou(ink_box(model), expected) >= 0.9


def test_every_step_off_still_gives_a_valid_square_image() -> None:
    drawing, known = house_drawing()
    result = normalize(drawing, ALL_OFF)
    assert_valid(result, ALL_OFF)
    assert iou(result.bbox, known) >= 0.9


# -------------------------------------------------------------------------------------- denoise/contrast


def line_with_speckle(width: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    image = canvas()
    cv2.line(image, (200, 300), (600, 340), (0, 0, 0), width, cv2.LINE_AA)
    rng = np.random.default_rng(7)
    for _ in range(60):  # 1 px and 2x2 px specks scattered over the whole canvas
        x, y = int(rng.integers(0, 798)), int(rng.integers(0, 598))
        if abs(y - (300 + (x - 200) / 10)) > 20:
            size = int(rng.integers(1, 3))
            image[y : y + size, x : x + size] = 0
    return image, (200, 300, 601, 341)


@pytest.mark.parametrize("width", [1, 2])
def test_thin_line_survives_and_speckle_is_removed(width: int) -> None:
    image, line_box = line_with_speckle(width)
    result = normalize(image)
    # The specks are scattered all over: had any survived, the crop box would be far bigger than the line.
    assert iou(result.bbox, line_box) >= 0.9
    # The whole line is still there, dark, from end to end of the (cropped) display image.
    display = result.display_image[:, :, 0]
    dark_columns = np.flatnonzero((display < 100).any(axis=0))
    assert dark_columns.size > 0.75 * display.shape[1]
    assert np.all(np.diff(dark_columns) == 1)  # no gaps


def test_without_denoise_the_speckle_stays() -> None:
    image, line_box = line_with_speckle(1)
    result = normalize(image, NormalizeOptions(denoise=False))
    assert iou(result.bbox, line_box) < 0.5


def test_contrast_stretch_makes_faint_ink_black_and_paper_white() -> None:
    image = canvas(value=225)
    cv2.circle(image, (400, 300), 150, (160, 160, 160), 6, cv2.LINE_AA)
    stretched = normalize(image).model_image
    assert stretched.min() == 0 and stretched.max() == 255
    plain = normalize(image, NormalizeOptions(contrast=False)).model_image
    assert plain.min() >= 150 and plain.max() == 225


# ------------------------------------------------------------------------------------- Sketchpad inputs


def sketchpad_layer(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A transparent RGBA layer with black strokes, and the same drawing as plain RGB on white.

    Colours under fully transparent pixels are garbage on purpose: Gradio makes no promise about them."""
    coverage = np.zeros((300, 400), np.uint8)
    cv2.polylines(coverage, [np.array([[50, 250], [200, 40], [350, 250]])], False, 255, 5, cv2.LINE_AA)
    cv2.circle(coverage, (200, 180), 40, 255, 3, cv2.LINE_AA)
    layer = rng.integers(0, 256, (300, 400, 4), dtype=np.uint8)
    layer[coverage > 0, :3] = 0
    layer[:, :, 3] = coverage
    rgb = np.repeat((255 - coverage)[:, :, None], 3, axis=2)
    return layer, rgb


def test_rgba_sketchpad_values_match_the_equivalent_rgb_image(tmp_path: Path) -> None:
    layer, rgb = sketchpad_layer(np.random.default_rng(0))
    expected = normalize(rgb)
    white = canvas(300, 400)
    transparent = np.zeros((300, 400, 4), np.uint8)
    Image.fromarray(layer).save(tmp_path / "layer.png")
    Image.fromarray(white).save(tmp_path / "background.png")
    values = {
        "rgba array": layer,
        "PIL RGBA": Image.fromarray(layer),
        "RGBA file": tmp_path / "layer.png",
        "RGBA file as str": str(tmp_path / "layer.png"),
        "dict, composite None": {"background": white, "layers": [layer], "composite": None},
        "dict, transparent background": {"background": transparent, "layers": [layer], "composite": None},
        "dict, no background": {"background": None, "layers": [layer], "composite": None},
        "dict, composite RGBA": {"background": None, "layers": [], "composite": layer},
        "dict of file paths": {
            "background": str(tmp_path / "background.png"),
            "layers": [str(tmp_path / "layer.png")],
            "composite": None,
        },
        "dict of PIL": {"background": Image.fromarray(white), "layers": [Image.fromarray(layer)]},
        "gradio file dict": {"path": str(tmp_path / "layer.png")},
    }
    for name, value in values.items():
        np.testing.assert_array_equal(load_rgb(value), rgb, err_msg=name)
        result = normalize(value)
        np.testing.assert_array_equal(result.model_image, expected.model_image, err_msg=name)
        assert result.bbox == expected.bbox, name


def test_layers_are_composited_in_order_over_the_background() -> None:
    background = canvas(100, 100, value=200)
    first = np.zeros((100, 100, 4), np.uint8)
    first[10:50, 10:50] = (0, 0, 0, 255)
    second = np.zeros((60, 60, 4), np.uint8)  # smaller than the canvas: anchored top-left
    second[30:40, 30:40] = (255, 0, 0, 255)
    rgb = load_rgb({"background": background, "layers": [first, None, second], "composite": None})
    assert rgb.shape == (100, 100, 3)
    assert rgb[0, 0].tolist() == [200, 200, 200]
    assert rgb[20, 20].tolist() == [0, 0, 0]
    assert rgb[35, 35].tolist() == [255, 0, 0]


@pytest.mark.parametrize(
    "value",
    [
        None,
        canvas(),
        canvas(value=0),
        canvas(value=128),
        np.zeros((300, 400, 4), np.uint8),  # fully transparent (what an untouched Sketchpad layer is)
        {"background": None, "layers": [], "composite": None},
        {"background": None, "layers": [None], "composite": None},
        {"background": canvas(), "layers": [np.zeros((600, 800, 4), np.uint8)], "composite": None},
    ],
    ids=["None", "white", "black", "grey", "transparent", "dict-all-none", "dict-none-layer", "dict-blank"],
)
def test_blank_canvas_raises_empty_sketch(value: object) -> None:
    with pytest.raises(EmptySketch, match="Draw something first"):
        normalize(value)


def test_only_speckle_counts_as_empty() -> None:
    image = canvas()
    image[100, 100] = image[400, 500] = 0
    with pytest.raises(EmptySketch):
        normalize(image)


# ------------------------------------------------------------------------------------------ bad inputs


def test_corrupt_and_non_image_files_raise_bad_image(tmp_path: Path) -> None:
    png = io.BytesIO()
    Image.fromarray(canvas(50, 50)).save(png, format="PNG")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(png.getvalue()[:40] + b"\x00garbage" * 20)
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    for source in (corrupt, text, str(text), corrupt.read_bytes(), tmp_path / "missing.png", tmp_path):
        with pytest.raises(BadImage):
            load_rgb(source)


@pytest.mark.parametrize(
    "value",
    [
        42,
        [[0, 255], [255, 0]],
        np.zeros((2, 3, 4, 5), np.uint8),
        np.zeros((10, 10, 5), np.uint8),
        np.zeros((0, 10), np.uint8),
        np.zeros((10, 10), np.complex64),
        np.array([["a", "b"]], dtype=object),
    ],
    ids=["int", "list", "4d", "5-channels", "no-pixels", "complex", "object"],
)
def test_wrong_types_raise_bad_image(value: object) -> None:
    with pytest.raises(BadImage):
        normalize(value)


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    Image.new("1", (12_000, 10_000)).save(bomb)  # 120 MP, a few kB on disk
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(BadImage, match="too large"):
        load_rgb(bomb)


def test_huge_image_is_downscaled_and_processed() -> None:
    image = np.full((6000, 8000, 3), 255, np.uint8)
    cv2.rectangle(image, (1000, 1500), (5000, 4000), (0, 0, 0), 3)  # 3 px at 8x reduction: must not vanish
    result = normalize(image)
    assert_valid(result)
    assert iou(result.bbox, (999, 1499, 5002, 4002)) >= 0.9
    assert result.model_image.min() < 64  # the thin outline is still clearly dark after 27x reduction


# ---------------------------------------------------------------------------------------- odd inputs

DTYPES = [np.uint8, np.uint16, np.int32, np.int8, np.float32, np.float64, np.bool_]
SHAPES = st.tuples(st.integers(1, 48), st.integers(1, 48), st.sampled_from([None, 1, 2, 3, 4]))


@st.composite
def odd_arrays(draw: st.DrawFn) -> np.ndarray:
    height, width, channels = draw(SHAPES)
    shape = (height, width) if channels is None else (height, width, channels)
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    elements = st.floats(-2, 3, width=32) | st.just(float("nan")) if dtype.kind == "f" else None
    return draw(hnp.arrays(dtype, shape, elements=elements))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(odd_arrays())
def test_random_arrays_never_crash(array: np.ndarray) -> None:
    try:
        result = normalize(array)
    except (EmptySketch, BadImage):
        return
    assert_valid(result)
    x0, y0, x1, y1 = result.bbox
    assert 0 <= x0 < x1 <= array.shape[1] and 0 <= y0 < y1 <= array.shape[0]


@settings(max_examples=40, deadline=None)
@given(
    odd_arrays(),
    st.sampled_from(["1", "L", "P", "RGB", "RGBA", "LA", "I", "F", "I;16", "CMYK", "YCbCr"]),
    st.booleans(),
    st.booleans(),
)
def test_random_pil_images_and_options_never_crash(
    array: np.ndarray, mode: str, polarity: bool, crop: bool
) -> None:
    try:
        image = Image.fromarray(load_rgb(array)).convert(mode)
    except (EmptySketch, BadImage):
        return
    options = NormalizeOptions(polarity=polarity, crop=crop, denoise=not crop, contrast=polarity)
    try:
        result = normalize(image, options)
    except (EmptySketch, BadImage):
        return
    assert_valid(result, options)


def test_one_pixel_wide_and_tall_images() -> None:
    for shape in [(1, 200), (200, 1), (1, 1)]:
        image = np.full(shape, 255, np.uint8)
        if image.size > 1:
            image.flat[50:150] = 0
            assert_valid(normalize(image))
        else:
            with pytest.raises(EmptySketch):
                normalize(image)
