"""The bench command's machinery, run in-process on the tiny checkpoint: every variant and stage section
reports, the JSON has the documented keys and the markdown renders. Timings are never asserted."""

from __future__ import annotations

import json

import pytest

from outlyne.config import DEFAULT_PRECISION, Config
from outlyne_dev.bench_stages import interrogation_section, search_section
from outlyne_dev.benchmark import (
    VARIANTS,
    BenchContext,
    export_section,
    latency_section,
    machine_section,
    pytorch_section,
    run_benchmark,
    targets_section,
    to_markdown,
)


def test_bench_sections_report_every_variant_and_stage(tiny_checkpoint, encoder_cache_dir):
    config = Config(model=str(tiny_checkpoint), cache_dir=encoder_cache_dir, threads=1)
    context = BenchContext(checkpoint=tiny_checkpoint, config=config, runs=30)
    # The child-process section (cold start, peak RSS) is left out: it only re-runs load_encoder, which
    # test_encoder covers, and would add a dozen interpreter starts to the suite.
    sections = [
        machine_section,
        export_section,
        pytorch_section,
        latency_section,
        interrogation_section,
        search_section,
        targets_section,
    ]
    results = run_benchmark(context, sections)

    assert set(results["single_image_p50_ms"]) == set(VARIANTS)
    p50 = results["single_image_p50_ms"]
    assert all(value > 0 for value in p50.values())
    for variant, ratio in results["p50_ratio_vs_pytorch"].items():  # each ratio is against PyTorch's p50
        assert ratio == pytest.approx(p50[variant] / p50["pytorch-fp32"], abs=0.01)
    assert results["default_precision"] == DEFAULT_PRECISION
    assert set(results["targets_met"]) == {"default_p50_ratio", "int8_static_p50_ratio", "cold_start"}
    assert results["concept_scoring"]["concepts"] >= 395
    assert {"normalize", "embed", "score", "query", "total"} <= set(results["interrogation_median_ms"])
    thumbnails = results["thumbnail_search"]
    assert thumbnails["thumbnails"] == thumbnails["fetched"] == 30 and thumbnails["dropped"] == {}
    assert results["local_search"]["rows"] == 100_000
    json.dumps(results)  # JSON-able as written by --out

    markdown = to_markdown(results)
    for variant in VARIANTS:  # one row per variant, carrying its own measured p50
        assert f"| {variant} | {p50[variant]:.1f} |" in markdown
    assert "Concept scoring" in markdown and "Exact local search" in markdown
