"""`python -m outlyne bench`: latency, throughput, memory and cold start of PyTorch vs OpenVINO."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from outlyne.config import Config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark the vision encoder: PyTorch eager FP32 vs each OpenVINO precision",
        description="Exports what is missing, then measures single-image latency (p50/p95/p99), batch-16 "
        "throughput, peak RSS and cached cold start. Takes several minutes on 2 cores.",
    )
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="the siglip-base-patch16-224 architecture with random weights (no download; timing does not "
        "depend on weight values) instead of OUTLYNE_MODEL",
    )
    parser.add_argument("--runs", type=int, default=50, help="timed single-image runs per variant (>= 30)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--out", type=Path, help="also write the JSON here (and a .md table beside it)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from outlyne.model import source as model_source
    from outlyne.progress import progress_to_stderr
    from outlyne_dev import benchmark

    if args.runs < 30:
        raise SystemExit("outlyne bench: --runs must be at least 30 for a meaningful p99")
    config = Config.from_env()
    if args.random_weights:
        folder = Path(config.cache_dir) / "bench" / f"{benchmark.BASE_ARCHITECTURE}-random"
        progress_to_stderr(f"building the {benchmark.BASE_ARCHITECTURE} architecture with random weights")
        checkpoint = benchmark.build_random_checkpoint(folder)
        architecture = f"{benchmark.BASE_ARCHITECTURE} (random weights)"
    else:
        checkpoint = model_source.fetch(model_source.resolve(config.model)).folder
        architecture = config.model
    context = benchmark.BenchContext(
        checkpoint=checkpoint,
        config=config.with_options(model=str(checkpoint)),
        runs=args.runs,
        progress=progress_to_stderr,
    )
    results = {"architecture": architecture, **benchmark.run_benchmark(context)}
    results["command"] = "python -m outlyne " + " ".join(sys.argv[1:])
    text = json.dumps(results, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        args.out.with_suffix(".md").write_text(benchmark.to_markdown(results))
    print(text if args.json else benchmark.to_markdown(results))
    return 0
