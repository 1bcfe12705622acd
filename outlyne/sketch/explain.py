"""Why does the model see this concept? An occlusion heatmap over the normalized sketch.

The normalized sketch is dark ink on white, so "hide a part" has an exact meaning: paint one cell of a
grid white, erasing that bit of the drawing. Every such variant goes through the encoder in one batch; the
drop in the concept's cosine is how much that part raised the score (a negative drop: it lowered it).
Cells without ink are never run: erasing nothing changes nothing, so their value is exactly 0. The cost is
therefore the inked cells only, and the grid is the finest whose inked cells fit a fixed budget of encoder
runs (the time budget, 1.5 s on two cores with the base architecture, fixes that number).

Occlusion rather than the pooling head's attention: it needs no second export of the model (the IR gives
the pooled embedding only), it explains the concept asked about (attention is the same for every label),
and it shows both signs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from outlyne.model.embedder import Embedder

INK_LEVEL = 200  # a pixel darker than this (of 255) counts as ink in the normalized sketch
GRIDS = (8, 7, 6, 5, 4, 3, 2)  # finest first; the first whose inked cells fit the budget is used
MAX_RUNS = 24  # encoder runs per explanation, the original included: see README "Why"


@dataclass(frozen=True)
class Cell:
    row: int
    column: int
    top: int
    bottom: int
    left: int
    right: int


@dataclass(frozen=True)
class Heatmap:
    label: str
    grid: np.ndarray
    """(n, n) float32: the drop in the concept's cosine when that cell is erased; > 0 raises the score."""
    cosine: float
    """The concept's cosine for the whole drawing."""
    runs: int
    elapsed_ms: float

    @property
    def peak_cell(self) -> tuple[int, int]:
        """(row, column) of the part that raises the score most."""
        row, column = np.unravel_index(int(np.argmax(self.grid)), self.grid.shape)
        return int(row), int(column)

    def to_json(self) -> dict[str, object]:
        return {
            "label": self.label,
            "cosine": round(self.cosine, 6),
            "grid": np.round(self.grid, 6).tolist(),
            "peak_cell": list(self.peak_cell),
            "runs": self.runs,
            "elapsed_ms": round(self.elapsed_ms, 1),
        }


def grid_cells(side: int, n: int) -> list[Cell]:
    edges = np.linspace(0, side, n + 1).round().astype(int)
    return [
        Cell(r, c, int(edges[r]), int(edges[r + 1]), int(edges[c]), int(edges[c + 1]))
        for r in range(n)
        for c in range(n)
    ]


def inked_cells(image: np.ndarray, n: int) -> list[Cell]:
    ink = image.min(axis=2) < INK_LEVEL if image.ndim == 3 else image < INK_LEVEL
    return [c for c in grid_cells(image.shape[0], n) if ink[c.top : c.bottom, c.left : c.right].any()]


def choose_grid(image: np.ndarray, grids: Sequence[int] = GRIDS, max_runs: int = MAX_RUNS) -> int:
    """The finest grid whose inked cells (plus the original) fit in `max_runs` encoder runs."""
    for n in grids:
        if len(inked_cells(image, n)) + 1 <= max_runs:
            return n
    return min(grids)


def occlusion_heatmap(
    image: np.ndarray,
    label: str,
    concept: np.ndarray,
    encoder: Embedder,
    *,
    grids: Sequence[int] = GRIDS,
    max_runs: int = MAX_RUNS,
) -> Heatmap:
    """`image`: the normalized sketch the encoder sees (square RGB uint8, dark ink on white);
    `concept`: the concept's unit text embedding. One batched encoder call."""
    start = time.perf_counter()
    n = choose_grid(image, grids, max_runs)
    cells = inked_cells(image, n)[: max(0, max_runs - 1)]
    variants = [image]
    for cell in cells:
        erased = image.copy()
        erased[cell.top : cell.bottom, cell.left : cell.right] = 255
        variants.append(erased)
    embeddings = encoder.embed_images(variants, batch_size=len(variants))
    cosines = embeddings @ np.asarray(concept, dtype=np.float32).reshape(-1)
    grid = np.zeros((n, n), np.float32)
    for cell, cosine in zip(cells, cosines[1:], strict=True):
        grid[cell.row, cell.column] = cosines[0] - cosine
    return Heatmap(label, grid, float(cosines[0]), len(variants), (time.perf_counter() - start) * 1000)


def overlay(image: np.ndarray, heatmap: Heatmap, *, strength: float = 0.65) -> np.ndarray:
    """The heatmap over a square RGB image: red where a part raises the score, blue where it lowers it,
    scaled so the strongest cell is fully coloured; the drawing stays readable underneath."""
    side = image.shape[0]
    peak = float(np.abs(heatmap.grid).max())
    if peak <= 0:
        return image.copy()
    # Cell centres sit at the centres of the upsampled pixels' blocks: INTER_LINEAR on the grid does that.
    smooth = cv2.resize(heatmap.grid / peak, (side, side), interpolation=cv2.INTER_LINEAR)
    alpha = (np.abs(smooth) * strength)[..., None]
    colour = np.where(
        smooth[..., None] >= 0, np.array([220, 30, 30], np.float32), np.array([30, 80, 220], np.float32)
    )
    blended = image.astype(np.float32) * (1 - alpha) + colour * alpha
    return blended.clip(0, 255).astype(np.uint8)
