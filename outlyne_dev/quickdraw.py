"""Quick, Draw! data and sketch-like drawings: read "simplified" ndjson, render strokes, make random doodles.

Simplified ndjson (https://github.com/googlecreativelab/quickdraw-dataset) holds one JSON object per line:
`word`, `drawing` (strokes `[[x0, x1, ...], [y0, y1, ...]]` on a 256x256 canvas) and optionally `key_id`,
`countrycode`, `recognized`, `timestamp`. The raw format's third per-stroke list (times) is ignored.

Rendering draws antialiased black lines on white, like the Sketchpad brush, so rendered samples look like
what a person draws in the app; `synthetic_sketches` makes random doodles for int8 calibration and tests.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

Stroke = tuple[list[int], list[int]]

# Raw (unsimplified) data uses screen pixels; anything beyond this is corrupt, not a big screen.
MAX_COORDINATE = 1e6
_SUBPIXEL_BITS = 4  # cv2 drawing takes fixed-point coordinates: 1/16 px keeps scaled strokes smooth
_SUPERSAMPLE = 4  # strokes are drawn at 4x and averaged down: exact widths, 16 levels of antialiasing


@dataclass(frozen=True)
class QuickDrawSample:
    word: str
    strokes: list[Stroke]
    key_id: str | None


def read_ndjson(
    path: str | Path, *, limit_per_word: int | None = None
) -> tuple[list[QuickDrawSample], list[str]]:
    """Read a (optionally gzipped) simplified ndjson file -> (samples, problems).

    Malformed lines are skipped and described in `problems` ("line 12: missing 'drawing'"); they are never
    fatal, since the public files are large and one bad line should not cost the rest. At most
    `limit_per_word` samples are kept per word, in file order. A missing file raises OSError as usual.
    """
    samples: list[QuickDrawSample] = []
    problems: list[str] = []
    per_word: Counter[str] = Counter()
    for number, line in _numbered_lines(Path(path)):
        try:
            sample = _parse_line(line)
        except ValueError as error:
            problems.append(f"line {number}: {error}")
            continue
        if limit_per_word is not None and per_word[sample.word] >= limit_per_word:
            continue
        per_word[sample.word] += 1
        samples.append(sample)
    return samples, problems


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    # errors="replace": a stray invalid byte becomes a parse problem on its line, not a crash of the file.
    with opener(path, "rt", encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield number, line


def _parse_line(line: str) -> QuickDrawSample:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg})") from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    if "word" not in record:
        raise ValueError("missing 'word'")
    word = record["word"]
    if not isinstance(word, str) or not word.strip():
        raise ValueError("'word' is not a non-empty string")
    if "drawing" not in record:
        raise ValueError("missing 'drawing'")
    key_id = record.get("key_id")
    return QuickDrawSample(
        word=word.strip(),
        strokes=_parse_drawing(record["drawing"]),
        key_id=None if key_id is None else str(key_id),
    )


def _parse_drawing(drawing: object) -> list[Stroke]:
    if not isinstance(drawing, list) or not drawing:
        raise ValueError("'drawing' is not a non-empty list of strokes")
    return [_parse_stroke(index, stroke) for index, stroke in enumerate(drawing, start=1)]


def _parse_stroke(index: int, stroke: object) -> Stroke:
    if not isinstance(stroke, list) or len(stroke) not in (2, 3):
        raise ValueError(f"stroke {index} is not [[x...], [y...]]")
    xs, ys = stroke[0], stroke[1]
    if not isinstance(xs, list) or not isinstance(ys, list):
        raise ValueError(f"stroke {index} is not [[x...], [y...]]")
    if len(xs) != len(ys):
        raise ValueError(f"stroke {index} has {len(xs)} x and {len(ys)} y coordinates")
    if not xs:
        raise ValueError(f"stroke {index} has no points")
    if not all(_is_coordinate(v) for v in (*xs, *ys)):
        raise ValueError(f"stroke {index} has a coordinate that is not a number below {MAX_COORDINATE:g}")
    return [round(v) for v in xs], [round(v) for v in ys]


def _is_coordinate(value: object) -> bool:
    # bool is an int subclass but never a coordinate; huge values would overflow cv2's fixed point.
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) <= MAX_COORDINATE
    )


def render_strokes(
    strokes: Sequence[tuple[Sequence[float], Sequence[float]]],
    *,
    size: int = 256,
    stroke_width: int | None = None,
    padding: int | None = None,
) -> np.ndarray:
    """Draw strokes as size x size x 3 uint8 RGB: antialiased black lines on white, like the Sketchpad brush.

    The drawing is scaled to fit inside `padding` (keeping its aspect ratio) and centred, so simplified
    data (top-left aligned) and hand-written strokes in any coordinate range come out alike. Defaults scale
    with `size`: stroke_width = size / 85 (3 px at 256), padding = size / 16. No strokes: a blank canvas.
    """
    width = max(1, round(size / 85)) if stroke_width is None else max(1, stroke_width)
    pad = size // 16 if padding is None else max(0, padding)
    paths = [np.column_stack([np.asarray(xs, float), np.asarray(ys, float)]) for xs, ys in strokes if len(xs)]
    if not paths:
        return np.full((size, size, 3), 255, np.uint8)
    points = np.concatenate(paths)
    low, high = points.min(axis=0), points.max(axis=0)
    extent = float(max(high - low)) or 1.0
    room = max(size - 2 * pad - width, 1)  # half a stroke width on each side must stay on the canvas
    scale = room / extent
    offset = (size - (high - low) * scale) / 2 - low * scale
    return _draw_supersampled([path * scale + offset for path in paths], size, width)


def _draw_supersampled(paths: list[np.ndarray], size: int, width: int) -> np.ndarray:
    """Draw round-capped polylines at _SUPERSAMPLE x resolution and average down.

    OpenCV's own LINE_AA draws thick lines 1-2 px wider than asked (3 comes out ~5 px); drawing solid
    lines big and area-averaging gives the asked width with smooth edges, like a browser's canvas brush."""
    big = size * _SUPERSAMPLE
    canvas = np.full((big, big), 255, np.uint8)
    one = 1 << _SUBPIXEL_BITS
    for path in paths:
        fixed = np.round(path * _SUPERSAMPLE * one).astype(np.int32)
        if (fixed == fixed[0]).all():
            # A tap: the Sketchpad leaves a round dot, a polyline of one point would leave nothing.
            radius = round(width * _SUPERSAMPLE / 2 * one)
            cv2.circle(canvas, tuple(int(v) for v in fixed[0]), radius, 0, -1, cv2.LINE_8, _SUBPIXEL_BITS)
        else:
            cv2.polylines(canvas, [fixed], False, 0, width * _SUPERSAMPLE, cv2.LINE_8, _SUBPIXEL_BITS)
    small = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_GRAY2RGB)


def synthetic_sketches(rng: np.random.Generator, n: int, size: int = 256) -> list[np.ndarray]:
    """n random sketch-like drawings (lines, circles, polylines, rectangles), each HxWx3 uint8 RGB.

    Not meant to look like anything: they give int8 calibration and tests the statistics of line art
    (mostly white, thin antialiased dark strokes, varied positions and sizes) without a data set."""
    return [_synthetic_sketch(rng, size) for _ in range(n)]


def _synthetic_sketch(rng: np.random.Generator, size: int) -> np.ndarray:
    strokes: list[Stroke] = []
    for _ in range(int(rng.integers(2, 7))):
        shape = _SHAPES[int(rng.integers(len(_SHAPES)))]
        strokes.extend(shape(rng))
    # Random padding and width: real sketches are not all centred at the same scale.
    return render_strokes(
        strokes,
        size=size,
        stroke_width=max(1, round(size / 256 * float(rng.uniform(1.5, 5)))),
        padding=int(rng.integers(size // 32, size // 4)),
    )


def _line(rng: np.random.Generator) -> list[Stroke]:
    xs, ys = rng.integers(0, 256, 2), rng.integers(0, 256, 2)
    return [(xs.tolist(), ys.tolist())]


def _polyline(rng: np.random.Generator) -> list[Stroke]:
    # A random walk with momentum reads as a hand-drawn squiggle rather than zigzag noise.
    steps = int(rng.integers(4, 16))
    angle = float(rng.uniform(0, 2 * np.pi))
    point = rng.uniform(40, 216, 2)
    xs, ys = [], []
    for _ in range(steps):
        xs.append(round(point[0]))
        ys.append(round(point[1]))
        angle += float(rng.normal(0, 0.6))
        point = np.clip(point + rng.uniform(8, 30) * np.array([np.cos(angle), np.sin(angle)]), 0, 255)
    return [(xs, ys)]


def _circle(rng: np.random.Generator) -> list[Stroke]:
    centre = rng.uniform(40, 216, 2)
    radii = rng.uniform(8, 80) * rng.uniform(0.6, 1.0, 2)  # slightly elliptic, as drawn by hand
    t = np.linspace(0, 2 * np.pi, int(rng.integers(12, 40)))
    xs = np.clip(centre[0] + radii[0] * np.cos(t), 0, 255)
    ys = np.clip(centre[1] + radii[1] * np.sin(t), 0, 255)
    return [(np.round(xs).astype(int).tolist(), np.round(ys).astype(int).tolist())]


def _rectangle(rng: np.random.Generator) -> list[Stroke]:
    x0, x1 = sorted(rng.integers(0, 256, 2).tolist())
    y0, y1 = sorted(rng.integers(0, 256, 2).tolist())
    return [([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0])]


_SHAPES = (_line, _polyline, _circle, _rectangle)
