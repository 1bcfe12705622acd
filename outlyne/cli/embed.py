"""`python -m outlyne embed IMAGE...`: print the L2-normalized embedding of each image."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from outlyne.cli.output import print_json
from outlyne.config import Config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="print the SigLIP image embedding of each image",
        description="Normalize each image as a sketch (unless --no-normalize) and print its embedding.",
    )
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files")
    parser.add_argument(
        "--no-normalize", action="store_true", help="embed the image as is, without sketch normalization"
    )
    parser.add_argument("--json", action="store_true", help="print JSON (full vectors)")
    parser.set_defaults(func=run)


def _model_inputs(paths: list[Path], normalize: bool) -> list[np.ndarray]:
    """Every file is read (and normalized) before the model is loaded: a bad file fails fast."""
    if normalize:
        from outlyne.sketch.normalize import normalize as normalize_sketch

        return [normalize_sketch(path).model_image for path in paths]
    from outlyne.model.preprocess import load_image, to_rgb

    return [to_rgb(load_image(path)) for path in paths]


def run(args: argparse.Namespace) -> int:
    from outlyne.model.choose import choose_encoder
    from outlyne.progress import progress_to_stderr

    images = _model_inputs(args.images, normalize=not args.no_normalize)
    encoder = choose_encoder(Config.from_env(), progress=progress_to_stderr)
    vectors = encoder.embed_images(images)
    if args.json:
        result = {
            "identity": encoder.identity,
            "embed_dim": encoder.embed_dim,
            "normalized": not args.no_normalize,
            "embeddings": [
                {"image": str(path), "embedding": [round(float(v), 7) for v in vector]}
                for path, vector in zip(args.images, vectors, strict=True)
            ],
        }
        print_json(result, indent=None)
        return 0
    for path, vector in zip(args.images, vectors, strict=True):
        head = " ".join(f"{v:+.4f}" for v in vector[:6])
        print(f"{path}: [{head} ...] ({encoder.embed_dim} dims, norm {np.linalg.norm(vector):.4f})")
    return 0
