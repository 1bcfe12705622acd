"""The "why" heatmap: occlusion over a grid of the normalized sketch (outlyne.sketch.explain).

A scripted encoder whose concept score depends on the ink in one known region only: the heatmap must
peak there, be zero where erasing changes nothing, and cost one encoder run per inked cell plus one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from PIL import Image

from outlyne.errors import UnknownConcept
from outlyne.model.embedder import l2_normalize
from outlyne.pipeline import Pipeline
from outlyne.sketch.explain import choose_grid, inked_cells, occlusion_heatmap, overlay

SIDE = 224
REGION = (slice(150, 200), slice(20, 70))  # rows, columns: the part the scripted concept looks at


class RegionEncoder:
    """Images: [ink inside REGION, ink elsewhere, 1] (normalized). The concept [1, 0, 0] therefore scores
    by the region's ink alone, and ink elsewhere lowers it a little (through the normalization)."""

    identity = "region"
    embed_dim = 3
    logit_scale = 0.0
    logit_bias = 0.0
    lowercase_prompts = False

    def __init__(self) -> None:
        self.batches: list[int] = []

    def embed_images(self, images: Sequence[np.ndarray], batch_size: int | None = None) -> np.ndarray:
        self.batches.append(len(images))
        rows = []
        for image in images:
            ink = np.asarray(image, np.float32).mean(axis=2) < 128
            inside = ink[REGION].mean()
            outside = (ink.sum() - ink[REGION].sum()) / ink.size
            rows.append([inside, outside, 0.05])
        return l2_normalize(np.array(rows, np.float32))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return l2_normalize(np.array([[1.0, 0.0, 0.0] for _ in texts], np.float32))


def drawing() -> np.ndarray:
    """A box inside REGION and a long line far from it, dark ink on white, like a normalized sketch."""
    image = np.full((SIDE, SIDE, 3), 255, np.uint8)
    image[160:190, 30:34] = 0
    image[160:190, 56:60] = 0
    image[160:164, 30:60] = 0
    image[186:190, 30:60] = 0
    image[30:34, 100:210] = 0
    return image


CONCEPT = np.array([1.0, 0.0, 0.0], np.float32)


def test_the_heatmap_peaks_where_the_score_comes_from() -> None:
    encoder = RegionEncoder()
    heatmap = occlusion_heatmap(drawing(), "box", CONCEPT, encoder)
    n = heatmap.grid.shape[0]
    row, column = heatmap.peak_cell
    # The peak cell's centre lies inside the region the scripted concept reads.
    centre_y, centre_x = (row + 0.5) * SIDE / n, (column + 0.5) * SIDE / n
    assert REGION[0].start - SIDE / n / 2 <= centre_y <= REGION[0].stop + SIDE / n / 2
    assert REGION[1].start - SIDE / n / 2 <= centre_x <= REGION[1].stop + SIDE / n / 2
    assert heatmap.grid[row, column] > 0  # erasing it lowers the score: it raised it


def test_parts_that_lower_the_score_come_out_negative() -> None:
    heatmap = occlusion_heatmap(drawing(), "box", CONCEPT, RegionEncoder())
    n = heatmap.grid.shape[0]
    line_cell = (int(32 * n / SIDE), int(150 * n / SIDE))  # a cell on the far line
    assert heatmap.grid[line_cell] < 0


def test_cells_without_ink_cost_nothing_and_stay_zero() -> None:
    encoder = RegionEncoder()
    heatmap = occlusion_heatmap(drawing(), "box", CONCEPT, encoder)
    n = heatmap.grid.shape[0]
    inked = {(c.row, c.column) for c in inked_cells(drawing(), n)}
    assert encoder.batches == [len(inked) + 1]  # one batch: the drawing and each inked cell erased
    assert heatmap.runs == len(inked) + 1
    blank = [(r, c) for r in range(n) for c in range(n) if (r, c) not in inked]
    assert blank and all(heatmap.grid[cell] == 0 for cell in blank)


def test_the_grid_is_the_finest_that_fits_the_run_budget() -> None:
    image = drawing()
    assert choose_grid(image, grids=(8, 4, 2), max_runs=1000) == 8
    few = len(inked_cells(image, 2)) + 1
    assert choose_grid(image, grids=(8, 4, 2), max_runs=few) == 2
    heatmap = occlusion_heatmap(image, "box", CONCEPT, RegionEncoder(), grids=(8, 4, 2), max_runs=few)
    assert heatmap.grid.shape == (2, 2) and heatmap.runs <= few


def test_the_overlay_colours_raising_parts_red_and_keeps_blank_paper_white() -> None:
    image = drawing()
    heatmap = occlusion_heatmap(image, "box", CONCEPT, RegionEncoder())
    shown = overlay(image, heatmap)
    assert shown.shape == image.shape and shown.dtype == np.uint8
    red, green, blue = (int(v) for v in shown[175, 45])  # inside the box, in the peak's cell
    assert red > green and red > blue
    assert tuple(shown[110, 5]) == (255, 255, 255)  # far from any inked cell: untouched paper


def test_the_pipeline_explains_a_concept_by_name_and_refuses_unknown_ones() -> None:
    from outlyne.concepts.bank import ConceptBank
    from outlyne.concepts.file import Concept
    from outlyne.config import Config

    encoder = RegionEncoder()
    bank = ConceptBank.build(encoder, [Concept("box", "shape"), Concept("line", "shape")], cache_dir=None)
    pipeline = Pipeline(Config(), encoder, bank, None)
    explanation = pipeline.explain(Image.fromarray(drawing()), "  BOX ")
    assert explanation.heatmap.label == "box"
    assert explanation.to_json()["peak_cell"] == list(explanation.heatmap.peak_cell)
    with pytest.raises(UnknownConcept, match="not one of the concepts"):
        pipeline.explain(Image.fromarray(drawing()), "teapot")
