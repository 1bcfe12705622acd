"""Draw the example sketches in examples/ from hand-written strokes: `python scripts/make_examples.py`.

Strokes are in Quick, Draw! style (lists of x and y on a 0..255 canvas, y down) and rendered with the same
antialiased brush as the Quick, Draw! data, so the examples are reproducible byte for byte.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from outlyne_dev.quickdraw import Stroke, render_strokes  # noqa: E402

SIZE = 512
STROKE_WIDTH = 6  # about what the Sketchpad brush leaves on a canvas of this size


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, points: int = 24) -> Stroke:
    """An elliptic arc from `start` to `end` degrees (0 = right, 90 = down, as on screen)."""
    angles = [math.radians(start + (end - start) * i / (points - 1)) for i in range(points)]
    return [round(cx + rx * math.cos(a)) for a in angles], [round(cy + ry * math.sin(a)) for a in angles]


def circle(cx: float, cy: float, r: float, points: int = 32) -> Stroke:
    return arc(cx, cy, r, r, 0, 360, points)


def line(*points: tuple[int, int]) -> Stroke:
    return [x for x, _ in points], [y for _, y in points]


def house() -> list[Stroke]:
    return [
        line((50, 120), (50, 240), (206, 240), (206, 120)),  # walls
        line((30, 125), (128, 30), (226, 125), (30, 125)),  # roof
        line((105, 240), (105, 170), (150, 170), (150, 240)),  # door
        circle(140, 206, 3, 8),  # door knob
        line((70, 145), (95, 145), (95, 170), (70, 170), (70, 145)),  # window
        line((82, 145), (82, 170)),
        line((70, 157), (95, 157)),
        line((165, 66), (165, 40), (185, 40), (185, 85)),  # chimney, standing on the roof
    ]


def cat_face() -> list[Stroke]:
    return [
        arc(128, 140, 95, 85, -35, 215, 40),  # head, open at the top between the ears
        line((50, 90), (55, 20), (102, 60)),  # left ear
        line((154, 60), (201, 20), (206, 90)),  # right ear
        arc(90, 120, 14, 10, 180, 360, 12),  # closed eyes, happy arcs
        arc(166, 120, 14, 10, 180, 360, 12),
        line((118, 150), (138, 150), (128, 162), (118, 150)),  # nose
        arc(115, 162, 13, 12, 0, 150, 10),  # mouth
        arc(141, 162, 13, 12, 30, 180, 10),
        line((30, 150), (95, 160)),  # whiskers
        line((28, 175), (95, 170)),
        line((226, 150), (161, 160)),
        line((228, 175), (161, 170)),
    ]


def bicycle() -> list[Stroke]:
    return [
        circle(60, 170, 48),  # wheels
        circle(196, 170, 48),
        circle(60, 170, 4, 8),  # hubs
        circle(196, 170, 4, 8),
        line((60, 170), (110, 170), (90, 95), (60, 170)),  # rear triangle
        line((110, 170), (170, 100), (90, 95)),  # down tube, top tube
        line((170, 100), (196, 170)),  # fork
        line((165, 85), (175, 115)),  # head tube
        line((155, 80), (165, 85), (185, 78)),  # handlebar
        line((88, 95), (84, 80)),  # seat post
        line((68, 78), (100, 78)),  # saddle
        line((110, 170), (120, 185)),  # pedal crank
        line((112, 187), (128, 187)),  # pedal
    ]


def crown(cx: float, cy: float, rx: float, ry: float, bumps: int = 9, points: int = 90) -> Stroke:
    """A closed cloud-like outline: an ellipse whose radius swells into `bumps` rounded lobes."""
    xs, ys = [], []
    for i in range(points + 1):
        a = 2 * math.pi * i / points
        swell = 0.85 + 0.15 * abs(math.sin(bumps * a / 2))
        xs.append(round(cx + rx * swell * math.cos(a)))
        ys.append(round(cy + ry * swell * math.sin(a)))
    return xs, ys


def tree() -> list[Stroke]:
    return [
        crown(128, 90, 110, 82),
        line((112, 245), (115, 162)),  # trunk
        line((144, 245), (141, 162)),
        line((115, 175), (95, 145)),  # branches reaching into the crown
        line((141, 178), (168, 140)),
        line((90, 245), (166, 245)),  # ground
    ]


def sun() -> list[Stroke]:
    rays = []
    for k in range(12):
        a = math.radians(k * 30)
        rays.append(
            line(
                (round(128 + 75 * math.cos(a)), round(128 + 75 * math.sin(a))),
                (round(128 + 120 * math.cos(a)), round(128 + 120 * math.sin(a))),
            )
        )
    return [
        circle(128, 128, 58, 40),
        circle(108, 115, 5, 8),  # eyes
        circle(148, 115, 5, 8),
        arc(128, 135, 25, 18, 20, 160, 12),  # smile
        *rays,
    ]


EXAMPLES = {"house": house, "cat_face": cat_face, "bicycle": bicycle, "tree": tree, "sun": sun}


def main(out_dir: Path = REPO / "examples") -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in EXAMPLES.items():
        image = render_strokes(draw(), size=SIZE, stroke_width=STROKE_WIDTH, padding=SIZE // 12)
        path = out_dir / f"{name}.png"
        Image.fromarray(image).save(path, optimize=True)
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in main():
        print(written_path.relative_to(REPO))
