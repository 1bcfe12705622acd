"""Generated sketch-like images: the calibration set for int8-static quantization (and test/bench inputs).

Static quantization fixes activation ranges from calibration data, so that data should look like what the
encoder will see: dark strokes on white (normalized sketches), not natural photos or noise. Drawing random
lines, curves and shapes with OpenCV needs no data set and is deterministic for a seed.
"""

from __future__ import annotations

import cv2
import numpy as np


def sketch_image(rng: np.random.Generator, size: int = 224) -> np.ndarray:
    """One size x size x 3 uint8 RGB image: a few random strokes and shapes in dark ink on white."""
    canvas = np.full((size, size, 3), 255, np.uint8)
    unit = size / 224
    for _ in range(int(rng.integers(3, 12))):
        ink = int(rng.integers(0, 90))
        color = (ink, ink, ink)
        thickness = max(1, round(float(rng.uniform(1.5, 6.0)) * unit))
        kind = rng.integers(0, 5)
        points = rng.integers(int(0.1 * size), int(0.9 * size), (2, 2))
        (x0, y0), (x1, y1) = points.tolist()
        if kind == 0:  # straight stroke
            cv2.line(canvas, (x0, y0), (x1, y1), color, thickness, cv2.LINE_AA)
        elif kind == 1:  # circle
            radius = int(rng.integers(max(2, size // 20), max(3, size // 3)))
            cv2.circle(canvas, (x0, y0), radius, color, thickness, cv2.LINE_AA)
        elif kind == 2:  # rectangle
            cv2.rectangle(canvas, (x0, y0), (x1, y1), color, thickness, cv2.LINE_AA)
        elif kind == 3:  # partial ellipse, like a hand-drawn arc
            axes = (int(rng.integers(size // 20, size // 3)), int(rng.integers(size // 20, size // 3)))
            angle, start = (int(v) for v in rng.integers(0, 360, 2))
            sweep = int(rng.integers(90, 360))
            cv2.ellipse(canvas, (x0, y0), axes, angle, start, start + sweep, color, thickness, cv2.LINE_AA)
        else:  # wobbly free-hand polyline
            steps = int(rng.integers(4, 12))
            walk = np.cumsum(rng.normal(0, size / 12, (steps, 2)), axis=0) + np.array([x0, y0])
            polyline = np.clip(walk, 0, size - 1).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(canvas, [polyline], False, color, thickness, cv2.LINE_AA)
    return canvas


def sketch_images(count: int, size: int = 224, seed: int = 0) -> list[np.ndarray]:
    """`count` deterministic sketch-like RGB images for a given seed."""
    rng = np.random.default_rng(seed)
    return [sketch_image(rng, size) for _ in range(count)]
