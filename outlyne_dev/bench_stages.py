"""Benchmark sections for the stages after the encoder: interrogation and search.

They run inside `python -m outlyne bench` after the vision sections, on the default precision's encoder
(already loaded by the export section), so every figure comes from the same process and model.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from outlyne.concepts.bank import ConceptBank
from outlyne.concepts.file import load_concept_file
from outlyne.config import DEFAULT_PRECISION, REPO_ROOT
from outlyne.model.embedder import Embedder, l2_normalize
from outlyne.pipeline import InterrogateOptions, Pipeline
from outlyne_dev.bench_context import BenchContext
from outlyne_dev.search_bench import measure_local_search, measure_thumbnail_search

EXAMPLES = REPO_ROOT / "examples"
INTERROGATION_RUNS = 30


def _default_encoder(ctx: BenchContext) -> Embedder:
    return ctx.extras["encoders"][DEFAULT_PRECISION]


def interrogation_section(ctx: BenchContext, results: dict) -> dict:
    """Concept scoring alone, then whole interrogations (normalize + embed + score + query) per stage."""
    encoder = _default_encoder(ctx)
    spec = load_concept_file(ctx.config.concepts_path)
    ctx.progress(f"concept bank: {len(spec.concepts)} concepts")
    bank = ConceptBank.from_file(
        encoder, ctx.config.concepts_path, cache_dir=Path(ctx.config.cache_dir), progress=ctx.progress
    )
    scoring = measure_scoring(bank, runs=2000)
    pipeline = Pipeline(ctx.config, encoder, bank, None)
    sketches = sorted(EXAMPLES.glob("*.png"))
    for sketch in sketches:  # warm-up
        pipeline.interrogate(sketch)
    stages: dict[str, list[float]] = {}
    ctx.progress(f"interrogation: {INTERROGATION_RUNS} rounds over {len(sketches)} example sketches")
    for _ in range(INTERROGATION_RUNS):
        for sketch in sketches:
            timings = pipeline.interrogate(sketch, InterrogateOptions(top_k=5)).timings_ms
            for stage, milliseconds in timings.items():
                stages.setdefault(stage, []).append(milliseconds)
    return {
        "concept_scoring": {key: round(value, 2) for key, value in scoring.items()},
        "interrogation_median_ms": {stage: round(statistics.median(v), 3) for stage, v in stages.items()},
        "interrogation_runs": INTERROGATION_RUNS * len(sketches),
        "interrogation_precision": DEFAULT_PRECISION,
    }


def search_section(ctx: BenchContext, results: dict) -> dict:
    """30 thumbnails from a local HTTP server: engine order, re-ranked order, batched vs per-image
    embedding; and exact local search over 100k x 768."""
    encoder = _default_encoder(ctx)
    ctx.progress("thumbnail search: 30 thumbnails from a local HTTP server")
    thumbnails = measure_thumbnail_search(encoder, count=30, repeats=5)
    ctx.progress("local search: exact nearest neighbours over 100k x 768")
    local = measure_local_search(rows=100_000, dim=encoder.embed_dim)
    return {"thumbnail_search": thumbnails, "local_search": local}


def stages_markdown(results: dict) -> str:
    """README lines for the stage sections (empty when they did not run)."""
    lines = []
    scoring = results.get("concept_scoring")
    if scoring:
        lines.append(
            f"- Concept scoring ({int(scoring['concepts'])} concepts, one matrix product + top-5): median "
            f"{scoring['median_us']:.0f} µs, p90 {scoring['p90_us']:.0f} µs."
        )
    stages = results.get("interrogation_median_ms")
    if stages:
        parts = ", ".join(f"{stage} {ms:.1f} ms" for stage, ms in stages.items())
        precision = results["interrogation_precision"]
        lines.append(f"- Interrogation of one sketch, median per stage ({precision}): {parts}.")
    search = results.get("thumbnail_search")
    if search:
        lines.append(
            f"- 30 thumbnails from a local HTTP server: engine-ordered results in "
            f"{search['engine_results_ms']:.2f} ms, re-ranked results in "
            f"{search['reranked_results_ms']:.0f} ms (fetch {search['fetch_ms']:.0f} ms); embedding them "
            f"batched {search['embed_batch_ms']:.0f} ms vs one by one {search['embed_loop_ms']:.0f} ms "
            f"= {search['batch_speedup']:.2f}x."
        )
    local = results.get("local_search")
    if local:
        lines.append(
            f"- Exact local search over {local['rows']:,} x {local['dim']}: median "
            f"{local['image_query_ms']:.1f} ms (blended with text {local['blended_query_ms']:.1f} ms)."
        )
    return "\n".join(lines) + ("\n" if lines else "")


def measure_scoring(bank: ConceptBank, runs: int = 1000, top_k: int = 5) -> dict[str, float]:
    """Time `bank.score` (matrix product, sigmoid, top-k, result objects) on a random unit vector."""
    rng = np.random.default_rng(0)
    vector = l2_normalize(rng.standard_normal(bank.embed_dim).astype(np.float32))
    for _ in range(min(runs, 20)):  # warm caches and numpy's dispatch before timing
        bank.score(vector, top_k)
    samples = []
    for _ in range(max(1, runs)):
        start = time.perf_counter_ns()
        bank.score(vector, top_k)
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return {
        "concepts": float(len(bank)),
        "embed_dim": float(bank.embed_dim),
        "runs": float(len(samples)),
        "median_us": statistics.median(samples),
        "p90_us": samples[int(0.9 * (len(samples) - 1))],
        "min_us": samples[0],
    }
