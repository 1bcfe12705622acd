"""`python -m outlyne export`: build the IR cache now (Docker build step, or once with network)."""

from __future__ import annotations

import argparse
import contextlib
import sys

from outlyne.cli.output import print_json
from outlyne.config import PRECISIONS, Config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export the SigLIP model named by OUTLYNE_MODEL to OpenVINO IR in the cache",
        description="Export (or verify the cached export of) the vision and text towers to OpenVINO IR. "
        "Progress goes to stderr.",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--precision", choices=PRECISIONS, help="instead of OUTLYNE_PRECISION")
    which.add_argument("--all-precisions", action="store_true", help="export every precision")
    parser.add_argument(
        "--concepts",
        action="store_true",
        help="also compute the concept text embeddings (OUTLYNE_CONCEPTS) into the cache",
    )
    parser.add_argument("--json", action="store_true", help="print what was exported as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from outlyne.model.encoder import load_encoder
    from outlyne.model.export import reuse_conversions
    from outlyne.progress import progress_to_stderr

    config = Config.from_env()
    precisions = PRECISIONS if args.all_precisions else (args.precision or config.precision,)
    exports = []
    # NNCF draws progress bars on stdout: keep stdout for the result. With several precisions the
    # checkpoint is converted once and each precision starts from that conversion.
    with reuse_conversions(), contextlib.redirect_stdout(sys.stderr):
        encoders = [
            load_encoder(config.with_options(precision=precision), progress=progress_to_stderr)
            for precision in precisions
        ]
        # A separate step in the image build (its own layer): editing concepts.json then re-exports nothing.
        if args.concepts:
            from outlyne.concepts.bank import ConceptBank

            for encoder in encoders:
                ConceptBank.from_file(
                    encoder, config.concepts_path, cache_dir=config.cache_dir, progress=progress_to_stderr
                )
    for precision, encoder in zip(precisions, encoders, strict=True):
        exports.append(
            {
                "model": config.model,
                "precision": precision,
                "identity": encoder.identity,
                "cache_folder": str(encoder.cache_folder),
                "exported_now": encoder.exported_now,
                "embed_dim": encoder.embed_dim,
            }
        )
    if args.json:
        print_json({"exports": exports})
        return 0
    for item in exports:
        state = "exported" if item["exported_now"] else "already cached"
        print(f"{item['precision']}: {state} in {item['cache_folder']}")
    return 0
