"""`python -m outlyne search IMAGE`: interrogate a sketch, search images for it, re-rank by likeness."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from outlyne.cli.configured import config_with
from outlyne.cli.output import positive_int, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="find images that look like a sketch (web engines or a local folder)",
        description="Interrogate a sketch, search with the generated query, re-rank results by similarity.",
    )
    parser.add_argument("image", type=Path, nargs="?", help="a sketch or photo; optional with --query")
    parser.add_argument("--query", help="search with this text instead of the generated query")
    parser.add_argument(
        "--backend",
        help="engines in order, as OUTLYNE_SEARCH: e.g. ddg,openverse,wikimedia | searxng:URL | "
        "local:FOLDER | none (default: OUTLYNE_SEARCH, else ddg,openverse,wikimedia)",
    )
    parser.add_argument(
        "--top", type=positive_int, default=20, help="how many results to ask for (default 20)"
    )
    parser.add_argument("--top-k", type=positive_int, default=5, help="how many concepts to use (default 5)")
    parser.add_argument("--safesearch", choices=("on", "moderate", "off"), default="moderate")
    parser.add_argument("--no-rerank", action="store_true", help="keep the engine's order")
    parser.add_argument(
        "--text-weight",
        type=_weight,
        default=0.0,
        help="galleries only: how much the query's words count beside the sketch, 0-1 (default 0)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a list")
    parser.set_defaults(func=run)


def _weight(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, not {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    from outlyne.errors import OutlyneError
    from outlyne.pipeline import InterrogateOptions, SearchOptions, get_pipeline
    from outlyne.progress import progress_to_stderr

    if args.image is None and not args.query:
        raise OutlyneError("Give a sketch image, or --query TEXT, or both.")
    config = config_with(search=args.backend)
    pipeline = get_pipeline(config, progress=progress_to_stderr)
    outcome = pipeline.search(
        args.image,
        query=args.query,
        options=SearchOptions(
            max_results=args.top,
            safesearch=args.safesearch,
            rerank=not args.no_rerank,
            text_weight=args.text_weight,
        ),
        interrogate_options=InterrogateOptions(top_k=args.top_k),
    )
    if args.json:
        print_json(outcome.to_json())
    else:
        if outcome.interrogation:
            labels = ", ".join(f"{c.label} {c.score:.2f}" for c in outcome.interrogation.concepts)
            print(f"concepts: {labels}")
        print(f"query: {outcome.query}")
        for position, result in enumerate(outcome.results, 1):
            similarity = "" if result.similarity is None else f"  sim {result.similarity:+.3f}"
            print(f"{position:3d}. {result.title[:70]}{similarity}\n     {result.url or result.thumbnail}")
        print("timings: " + ", ".join(f"{k} {v:.1f} ms" for k, v in outcome.timings_ms.items()))
    if outcome.warning:
        print(f"outlyne: {outcome.warning}", file=sys.stderr)
        return 3
    return 0
