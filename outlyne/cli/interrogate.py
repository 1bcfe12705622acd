"""`python -m outlyne interrogate IMAGE`: what does this drawing look like, and what would we search?"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from outlyne.cli.configured import config_with
from outlyne.cli.output import positive_int, print_json
from outlyne.errors import OutlyneError, shorten


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "interrogate",
        help="score a sketch against the concept bank and print the generated search query",
        description="Normalize a sketch, embed it and score it against the concept bank (no web search).",
    )
    parser.add_argument("image", type=Path, help="a sketch or photo (png, jpg, webp, ...)")
    parser.add_argument(
        "--top-k", type=positive_int, default=5, help="how many concepts to report (default 5)"
    )
    parser.add_argument("--concepts", type=Path, help="a concepts file instead of OUTLYNE_CONCEPTS")
    parser.add_argument("--save-normalized", type=Path, metavar="OUT.png", help="save what the model saw")
    parser.add_argument(
        "--explain",
        metavar="LABEL",
        help="also explain one concept: which parts of the drawing raise or lower its score",
    )
    parser.add_argument(
        "--out", type=Path, metavar="HEAT.png", help="with --explain: save the heatmap over the drawing"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from outlyne.pipeline import InterrogateOptions, get_pipeline
    from outlyne.progress import progress_to_stderr

    config = config_with(concepts_path=args.concepts)
    if args.out and not args.explain:
        raise OutlyneError("--out saves the heatmap of --explain LABEL: name the concept too.")
    pipeline = get_pipeline(config, progress=progress_to_stderr)
    result = pipeline.interrogate(args.image, InterrogateOptions(top_k=args.top_k))
    explanation = pipeline.explain(args.image, args.explain) if args.explain else None
    if explanation is not None and args.out:
        from PIL import Image

        from outlyne.sketch.explain import overlay

        args.out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(overlay(explanation.sketch.display_image, explanation.heatmap)).save(args.out)
    if args.save_normalized:
        from PIL import Image

        try:
            args.save_normalized.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(result.sketch.model_image).save(args.save_normalized)
        except (OSError, ValueError) as error:  # ValueError: a suffix Pillow has no format for
            reason = os.strerror(error.errno).lower() if getattr(error, "errno", None) else "unknown format"
            name = shorten(args.save_normalized.name, 60)
            raise OutlyneError(f"Cannot save the normalized sketch as {name} ({reason}).") from None
    if args.json:
        data = result.to_json()
        if explanation is not None:
            data["explain"] = explanation.to_json()
        print_json(data)
        return 0
    width = max(len(c.label) for c in result.concepts)
    for concept in result.concepts:
        bar = "#" * round(concept.score * 30)
        print(f"{concept.label:<{width}}  {concept.score:6.3f}  cos {concept.cosine:+.3f}  {bar}")
    print(f"query: {result.query}")
    print("timings: " + ", ".join(f"{k} {v:.1f} ms" for k, v in result.timings_ms.items()))
    if explanation is not None:
        heatmap = explanation.heatmap
        row, column = heatmap.peak_cell
        n = heatmap.grid.shape[0]
        print(
            f"why {heatmap.label}: strongest part in row {row + 1}, column {column + 1} of a {n}x{n} grid "
            f"({heatmap.runs} runs, {heatmap.elapsed_ms:.0f} ms)"
            + (f"; heatmap saved to {args.out}" if args.out else "")
        )
    return 0
