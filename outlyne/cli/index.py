"""`python -m outlyne index FOLDER [--batch-size N] [--json]`: build or update FOLDER/.outlyne/.

The index is what `OUTLYNE_SEARCH=local:FOLDER` searches; with OUTLYNE_SEARCH=milvus:PATH.db or
milvus:http://HOST:PORT the images go into that Milvus gallery instead. Re-running it only embeds new and
changed images. The progress bar goes to stderr (only on a terminal) so `--json` output on stdout stays clean.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from outlyne.cli.output import positive_int, print_json
from outlyne.model.embedder import Embedder


def load_encoder() -> Embedder:
    """The configured encoder. Module-level so tests replace it (monkeypatch) with a fake; imported lazily
    so `--help` and the other commands never load OpenVINO."""
    from outlyne.config import Config
    from outlyne.model.choose import choose_encoder

    return choose_encoder(Config.from_env())


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "index",
        help="index an image folder for OUTLYNE_SEARCH=local:FOLDER",
        description="Embed every image under FOLDER (jpg, png, webp, gif, bmp; recursively) into "
        "FOLDER/.outlyne/. Incremental: only new and changed images are embedded.",
    )
    parser.add_argument("folder", type=Path, help="the image folder")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="images per encoder call")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from outlyne.config import Config

    config = Config.from_env()
    batch_size = args.batch_size or config.batch_size
    encoder = load_encoder()
    start = time.perf_counter()
    progress = sys.stderr.isatty()
    if config.milvus_uri is not None:  # OUTLYNE_SEARCH=milvus:...: index into that gallery instead
        from outlyne.search.galleries.milvus import index_into_milvus

        gallery = f"milvus:{config.milvus_uri}"
        report = index_into_milvus(
            config.milvus_uri,
            args.folder,
            encoder,
            batch_size=batch_size,
            progress=progress,
            limits=config.image_limits,
        )
    else:
        from outlyne.search.galleries.folder import index_folder

        gallery = f"local:{args.folder.resolve()}"
        report = index_folder(
            args.folder, encoder, batch_size=batch_size, progress=progress, limits=config.image_limits
        )
    seconds = time.perf_counter() - start
    if args.json:
        payload = {
            "folder": str(args.folder.resolve()),
            "gallery": gallery,
            "encoder": encoder.identity,
            "added": report.added,
            "updated": report.updated,
            "removed": report.removed,
            "unchanged": report.unchanged,
            "skipped": [{"path": path, "reason": reason} for path, reason in report.skipped],
            "rebuilt": report.rebuilt,
            "seconds": round(seconds, 3),
        }
        print_json(payload)
    else:
        if report.rebuilt:
            print(f"{report.rebuilt}: rebuilt it.")
        total = report.added + report.updated + report.unchanged
        print(
            f"{args.folder}: {total} images indexed ({report.added} added, {report.updated} updated, "
            f"{report.removed} removed, {report.unchanged} unchanged) in {seconds:.1f} s"
        )
        for path, reason in report.skipped:
            print(f"  skipped {path}: {reason}")
    return 0
