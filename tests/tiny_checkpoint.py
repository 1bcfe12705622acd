"""Build a tiny random-weight SigLIP checkpoint on disk.

No model hub is reachable in tests, so the real loading and export code runs on this folder instead.
The weights are random: the model means nothing, only mechanics and parity can be tested with it.
"""

from __future__ import annotations

import io
from pathlib import Path

_CORPUS_WORDS = (
    "a sketch of a drawing doodle line art cat dog house tree car chair table bicycle airplane "
    "flower sun moon star fish bird apple banana clock cup guitar piano shoe hat face person "
    "minimalist furniture industrial design nature landscape logo portrait building animal"
).split()


def _train_sentencepiece(vocab_size: int) -> bytes:
    import sentencepiece as spm

    sentences = [" ".join(_CORPUS_WORDS[i : i + 6]) for i in range(len(_CORPUS_WORDS))] * 20
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


def build_tiny_siglip(
    folder: Path,
    *,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 2,
    image_size: int = 32,
    patch_size: int = 8,
    vocab_size: int = 96,
    seed: int = 0,
) -> Path:
    """Write a random SigLIP checkpoint (model, tokenizer, image processor) into `folder`."""
    import torch
    from transformers import (
        SiglipConfig,
        SiglipImageProcessorPil,
        SiglipModel,
        SiglipProcessor,
        SiglipTokenizer,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spm_path = folder / "spiece.model"
    spm_path.write_bytes(_train_sentencepiece(vocab_size))

    tokenizer = SiglipTokenizer(vocab_file=str(spm_path), model_max_length=64)
    common = dict(
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
    )
    config = SiglipConfig(
        text_config=dict(
            common,
            vocab_size=len(tokenizer),
            max_position_embeddings=64,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        ),
        vision_config=dict(common, image_size=image_size, patch_size=patch_size),
    )
    torch.manual_seed(seed)
    model = SiglipModel(config).eval()
    # Random init leaves scale/bias at defaults; make them distinctive so tests catch a mix-up.
    with torch.no_grad():
        model.logit_scale.fill_(2.5)
        model.logit_bias.fill_(-7.0)
    model.save_pretrained(folder)

    image_processor = SiglipImageProcessorPil(size={"height": image_size, "width": image_size}, resample=3)
    SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


if __name__ == "__main__":
    import sys

    print(build_tiny_siglip(Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-siglip")))
