"""`python -m outlyne eval DATA...`: accuracy on labelled sketches, and what each variant changes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from outlyne.cli.configured import config_with
from outlyne.errors import OutlyneError

VARIANT_CHOICES = ("normalization", "templates", "precision", "none")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="measure zero-shot accuracy on labelled sketches (folders or Quick, Draw! ndjson)",
        description=(
            "Top-1/top-5 accuracy on labelled sketches, per concept group, the most confused labels and the "
            "latency per sketch; then the same with each normalization step off, each prompt template alone "
            "and each precision (compared with fp32). Prints markdown unless --json/--markdown say where."
        ),
    )
    parser.add_argument(
        "data",
        type=Path,
        nargs="+",
        metavar="DATA",
        help="a folder with one sub-folder per label, or Quick, Draw! simplified .ndjson(.gz) files",
    )
    parser.add_argument("--limit-per-label", type=int, metavar="N", help="at most N sketches per label")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the JSON report here ('-': stdout)")
    parser.add_argument(
        "--markdown", type=Path, metavar="OUT", help="write markdown tables here ('-': stdout)"
    )
    parser.add_argument(
        "--gallery",
        type=Path,
        metavar="FOLDER",
        help="also measure local-search recall@K on this folder of images in label sub-folders",
    )
    parser.add_argument(
        "--variants",
        nargs="*",
        choices=VARIANT_CHOICES,
        default=list(VARIANT_CHOICES[:-1]),
        help="which variants to measure besides the baseline (default: all; 'none' for the baseline only)",
    )
    parser.add_argument(
        "--top-k", type=int, nargs="+", default=[1, 5], metavar="K", help="accuracy and recall at these K"
    )
    parser.add_argument("--precision", help="the baseline precision (default: OUTLYNE_PRECISION)")
    parser.add_argument("--concepts", type=Path, help="a concepts file instead of OUTLYNE_CONCEPTS")
    parser.add_argument("--batch-size", type=int, help="sketches per encoder call (1 = interactive latency)")
    parser.add_argument("--confusions", type=int, default=10, help="how many confused pairs to list")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from outlyne.concepts.file import PROMPT_TEMPLATES, load_concept_file
    from outlyne.progress import progress_to_stderr
    from outlyne_dev import evaluation

    if args.limit_per_label is not None and args.limit_per_label < 1:
        raise OutlyneError("--limit-per-label must be at least 1.")
    config = config_with(concepts_path=args.concepts)
    spec = load_concept_file(config.concepts_path)
    options = evaluation.EvalOptions(
        variants=tuple(v for v in args.variants if v != "none"),
        ks=tuple(sorted(set(args.top_k))),
        precision=(args.precision or config.precision).lower(),
        batch_size=args.batch_size or config.batch_size,
        templates=spec.templates or PROMPT_TEMPLATES,  # the ensemble the app uses for this concept file
        confusions=args.confusions,
        show_progress=not args.no_progress,
        model=config.model,
    )
    dataset = evaluation.load_dataset(args.data, limit_per_label=args.limit_per_label)

    def encoder_for(precision: str):
        from outlyne.model.encoder import load_encoder  # OpenVINO is imported only when the command runs

        return load_encoder(config.with_options(precision=precision), progress=progress_to_stderr)

    gallery = None
    if args.gallery:
        if not args.gallery.is_dir():
            raise OutlyneError(f"--gallery {args.gallery} is not a folder.")
        gallery = evaluation.LocalGallery(args.gallery, options.batch_size, options.show_progress)
    report = evaluation.evaluate(
        dataset,
        spec.concepts,
        encoder_for,
        evaluation.bank_factory(spec.concepts, config.cache_dir, progress_to_stderr),
        options,
        gallery=gallery,
    )
    _write_reports(args, report)
    return 0


def _write_reports(args: argparse.Namespace, report: dict) -> None:
    from outlyne_dev import evaluation

    outputs = {args.json: evaluation.to_json(report)} if args.json else {}
    if args.markdown or not args.json:
        outputs[args.markdown or Path("-")] = evaluation.render_markdown(report)
    for path, text in outputs.items():
        if str(path) == "-":
            sys.stdout.write(text)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    overall = report["overall"]
    summary = ", ".join(f"top-{k} {overall[f'top{k}'] * 100:.1f}%" for k in report["ks"])
    written = [str(path) for path in outputs if str(path) != "-"]
    print(
        f"outlyne: {summary} on {overall['n']} sketches"
        + (f"; wrote {', '.join(written)}" if written else ""),
        file=sys.stderr,
    )
