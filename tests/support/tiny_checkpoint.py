"""A tiny random-weight SigLIP checkpoint on disk: the real loading and export code runs on it in tests.

The weights are random: the model means nothing, only mechanics and parity can be tested with it.
"""

from __future__ import annotations

from pathlib import Path

from outlyne_dev.random_checkpoint import build_random_siglip


def build_tiny_siglip(folder: Path, *, hidden_size: int = 32, layers: int = 2, heads: int = 2) -> Path:
    """2 layers, hidden 32, 32 px images in 8 px patches; the vocabulary of the small tokenizer."""
    common = {
        "hidden_size": hidden_size,
        "intermediate_size": hidden_size * 2,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
    }
    return build_random_siglip(
        Path(folder),
        text_config={**common, "max_position_embeddings": 64},
        vision_config={**common, "patch_size": 8},
        image_size=32,
        # Random init leaves scale/bias at defaults; distinctive values make a mix-up visible in tests.
        logit_scale=2.5,
        logit_bias=-7.0,
        fit_vocab=True,
    )


if __name__ == "__main__":
    import sys

    print(build_tiny_siglip(Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-siglip")))
