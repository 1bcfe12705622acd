"""Random-weight SigLIP checkpoints written to disk, for tests and the benchmark.

No model hub is reachable offline, yet the real loading and export code should run. Timing does not depend
on weight values, so the benchmark uses the real siglip-base-patch16-224 architecture with random weights;
tests use a tiny one. Both get a sentencepiece tokenizer trained on the spot and the standard processor.
Random weights mean nothing: only mechanics, parity and speed can be measured with them.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

_WORDS = (
    "a sketch of a drawing doodle line art cat dog house tree car chair table bicycle airplane "
    "flower sun moon star fish bird apple banana clock cup guitar piano shoe hat face person "
    "minimalist furniture industrial design nature landscape logo portrait building animal"
).split()


def train_tokenizer_model(vocab_size: int = 96) -> bytes:
    """A small unigram sentencepiece model with SigLIP's special tokens (pad 0, eos 1, unk 2)."""
    import sentencepiece as spm

    sentences = [" ".join(_WORDS[i : i + 6]) for i in range(len(_WORDS))] * 20
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        pad_piece="<pad>",
        eos_piece="</s>",
        unk_piece="<unk>",
        hard_vocab_limit=False,
        minloglevel=2,
    )
    return model.getvalue()


def build_random_siglip(
    folder: Path,
    *,
    text_config: dict[str, Any] | None = None,
    vision_config: dict[str, Any] | None = None,
    image_size: int = 224,
    logit_scale: float | None = None,
    logit_bias: float | None = None,
    fit_vocab: bool = False,
    seed: int = 0,
) -> Path:
    """Write a random SigLIP checkpoint (model, tokenizer, processor) into `folder`, atomically.

    Empty configs give `SiglipConfig()` defaults, which are exactly siglip-base-patch16-224. An existing
    complete folder is reused as is. `fit_vocab` sizes the text embedding table to the small tokenizer.
    """
    folder = Path(folder)
    if (folder / "model.safetensors").is_file() and (folder / "processor_config.json").is_file():
        return folder
    import torch
    from transformers import (
        SiglipConfig,
        SiglipImageProcessorPil,
        SiglipModel,
        SiglipProcessor,
        SiglipTokenizer,
    )

    staging = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "spiece.model").write_bytes(train_tokenizer_model())
    tokenizer = SiglipTokenizer(vocab_file=str(staging / "spiece.model"), model_max_length=64)
    # Only the special token ids follow the small tokenizer; the text embedding table keeps its configured
    # size (for the base architecture, 32000 rows are part of the real model's size).
    text = {
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": None,
    }
    config = SiglipConfig(
        text_config={**text, **(text_config or {})},
        vision_config={"image_size": image_size, **(vision_config or {})},
    )
    torch.manual_seed(seed)
    model = SiglipModel(config).eval()
    with torch.no_grad():
        if logit_scale is not None:
            model.logit_scale.fill_(logit_scale)
        if logit_bias is not None:
            model.logit_bias.fill_(logit_bias)
    model.save_pretrained(staging)
    processor = SiglipImageProcessorPil(size={"height": image_size, "width": image_size}, resample=3)
    SiglipProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(staging)
    os.replace(staging, folder)
    return folder


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
