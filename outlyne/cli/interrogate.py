"""`python -m outlyne interrogate IMAGE`: what does this drawing look like, and what would we search?"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from outlyne.cli.output import positive_int, print_json
from outlyne.config import Config
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
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from outlyne.pipeline import InterrogateOptions, get_pipeline
    from outlyne.progress import progress_to_stderr

    config = Config.from_env()
    if args.concepts:
        config = config.with_options(concepts_path=args.concepts)
    pipeline = get_pipeline(config, progress=progress_to_stderr)
    result = pipeline.interrogate(args.image, InterrogateOptions(top_k=args.top_k))
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
        print_json(result.to_json())
        return 0
    width = max(len(c.label) for c in result.concepts)
    for concept in result.concepts:
        bar = "#" * round(concept.score * 30)
        print(f"{concept.label:<{width}}  {concept.score:6.3f}  cos {concept.cosine:+.3f}  {bar}")
    print(f"query: {result.query}")
    print("timings: " + ", ".join(f"{k} {v:.1f} ms" for k, v in result.timings_ms.items()))
    return 0
