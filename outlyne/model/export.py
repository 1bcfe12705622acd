"""PyTorch SigLIP checkpoint -> two OpenVINO IR graphs (vision, text), at one precision.

The only module that imports torch, transformers' models and NNCF, and only inside functions: runtime code
imports this module lazily, when the cache has to be (re)built.

Each tower is exported on its own with a dynamic batch axis and an L2 normalization appended as the last op
of the graph (one NormalizeL2 node), so the runtime returns unit vectors and int8-static can leave exactly
that node out of quantization (seed 004: quantizing the normalization costs accuracy for no speed).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from outlyne.model.calibration import sketch_images
from outlyne.model.ir_cache import write_manifest
from outlyne.model.preprocess import PreprocessSpec, preprocess
from outlyne.progress import Progress

NORMALIZE_NODE = "outlyne_l2_normalize"
VISION_FILE = "vision.xml"
TEXT_FILE = "text.xml"
TOKENIZER_DIR = "tokenizer"
# Node names OpenVINO gives the vision tower's attention-pooling head (from the torch module path).
HEAD_PATTERN = r".*vision_model\.head[./].*"
# int8-static calibration set size. NNCF's default is 300; sketches are a narrow distribution and 64 gave
# the same worst-case cosine as 128 on the test model (0.993) at half the export time, which matters: on
# the base model, calibration dominates the int8-static export (minutes on 2 cores).
CALIBRATION_SIZE = 64


def _quiet_libraries() -> None:
    """NNCF logs tables at INFO level; the CLI's progress messages say what is happening instead."""
    import nncf

    nncf.set_log_level(logging.WARNING)


def append_l2_normalize(model):  # ov.Model -> ov.Model (same object, rewired)
    """Make L2 normalization the graph's last op, as one named node the quantizer can be told to skip."""
    from openvino import opset13 as ops

    result = model.get_results()[0]
    pooled = result.input_value(0)
    axes = ops.constant(np.array([1], np.int64))
    normalized = ops.normalize_l2(pooled, axes, 1e-12, "max")  # max(eps, norm): a zero row stays zero
    normalized.set_friendly_name(NORMALIZE_NODE)
    result.input(0).replace_source_output(normalized.output(0))
    normalized.output(0).set_names({"embedding"})
    model.validate_nodes_and_infer_types()
    return model


def _towers(model):
    """Two torch modules returning the pooled (un-normalized) embeddings, as get_*_features does."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

    # Each forward keeps the model's own argument name: convert_text's dynamic_shapes name `input_ids`.
    class VisionTower(Tower):
        def forward(self, pixel_values):
            return self.model.get_image_features(pixel_values=pixel_values).pooler_output

    class TextTower(Tower):
        def forward(self, input_ids):
            return self.model.get_text_features(input_ids=input_ids).pooler_output

    return VisionTower().eval(), TextTower().eval()


def convert_vision(tower, spec: PreprocessSpec):
    """Tracing works for the vision tower; the input shape is pinned except for the batch axis."""
    import openvino as ov
    import torch

    example = torch.zeros((2, 3, spec.height, spec.width), dtype=torch.float32)
    with torch.no_grad():
        model = ov.convert_model(
            tower, example_input=example, input=[ov.PartialShape([-1, 3, spec.height, spec.width])]
        )
    model.inputs[0].get_tensor().set_names({"pixel_values"})
    return append_l2_normalize(model)


def convert_text(tower, text_length: int):
    """TorchScript tracing breaks on the transformers 5 attention-mask helper; torch.export does not.
    The sequence axis is then pinned to the padded length the tokenizer always produces."""
    import openvino as ov
    import torch
    from torch.export import Dim, export

    example = torch.ones((2, text_length), dtype=torch.int64)
    with torch.no_grad():
        program = export(tower, (example,), dynamic_shapes={"input_ids": {0: Dim("batch")}})
        model = ov.convert_model(program)
    model.reshape({model.inputs[0]: ov.PartialShape([-1, text_length])})
    model.inputs[0].get_tensor().set_names({"input_ids"})
    return append_l2_normalize(model)


def compress_weights(model):
    """INT8 weight-only compression: weights stored as int8, activations stay float."""
    import nncf

    return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)


def quantize_static(model, spec: PreprocessSpec, calibration_size: int):
    """INT8 weights and activations, ranges calibrated on generated sketches.

    Kept in float: the final normalization (seed 004) and the attention-pooling head. The head reduces all
    patch tokens to one vector through a single-query attention, and its outputs feed the embedding
    directly: quantizing it cost the most accuracy in measurements (worst-case cosine vs FP32 0.979 ->
    0.993 on the tiny test model when kept in float) while it is under 1% of the compute.
    """
    import nncf

    images = sketch_images(calibration_size, size=max(224, spec.height), seed=1234)
    samples = [preprocess([image], spec) for image in images]
    return nncf.quantize(
        model,
        nncf.Dataset(samples),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=calibration_size,
        ignored_scope=nncf.IgnoredScope(names=[NORMALIZE_NODE], patterns=[HEAD_PATTERN]),
    )


def _text_length(model_config, tokenizer) -> int:
    """SigLIP is trained on text padded to a fixed length (64): position embeddings bound it."""
    limit = int(getattr(model_config.text_config, "max_position_embeddings", 64))
    tokenizer_limit = getattr(tokenizer, "model_max_length", limit) or limit
    return min(limit, int(tokenizer_limit)) if tokenizer_limit < 10**6 else limit


def _lowercase_prompts(name: str, tokenizer_class: str, tokenizer_config: dict) -> bool:
    """SigLIP2 (Gemma tokenizer) was trained on lowercase text; SigLIP's own tokenizer lowercases too."""
    return (
        "siglip2" in name.lower()
        or tokenizer_class.startswith("Gemma")
        or bool(tokenizer_config.get("do_lower_case", False))
    )


@dataclass
class Converted:
    """A checkpoint converted to FP32 IR, plus what the manifest needs from the PyTorch model."""

    vision: object  # ov.Model
    text: object  # ov.Model
    tokenizer: object
    spec: PreprocessSpec
    text_length: int
    logit_scale: float
    logit_bias: float


# Conversions kept for reuse inside `reuse_conversions()` blocks only; None outside them.
_conversions: dict[tuple[str, str], Converted] | None = None


@contextlib.contextmanager
def reuse_conversions() -> Iterator[None]:
    """Within this block each checkpoint is converted once and every precision starts from a copy
    (export --all-precisions, the benchmark, the test session). Outside it nothing stays in memory: a
    server that exported once should not hold a second copy of the model for its lifetime."""
    global _conversions
    outermost = _conversions is None
    if outermost:
        _conversions = {}
    try:
        yield
    finally:
        if outermost:
            _conversions = None


def convert_checkpoint(checkpoint: Path, progress: Progress) -> Converted:
    """Load the PyTorch checkpoint and convert both towers to FP32 IR with normalization appended."""
    import torch
    import transformers
    from transformers import SiglipModel

    config = json.loads((checkpoint / "config.json").read_text())
    if config.get("model_type") != "siglip":
        raise ValueError(
            f"{checkpoint} is a {config.get('model_type')!r} model; only fixed-resolution SigLIP / SigLIP2 "
            "checkpoints (model_type 'siglip') are supported."
        )
    progress(f"loading the PyTorch checkpoint from {checkpoint}")
    model = SiglipModel.from_pretrained(checkpoint, dtype=torch.float32).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint)
    spec = PreprocessSpec.from_checkpoint(checkpoint)
    text_length = _text_length(model.config, tokenizer)
    vision_tower, text_tower = _towers(model)
    progress("converting the vision tower to OpenVINO IR")
    vision = convert_vision(vision_tower, spec)
    progress("converting the text tower to OpenVINO IR (torch.export)")
    text = convert_text(text_tower, text_length)
    return Converted(
        vision=vision,
        text=text,
        tokenizer=tokenizer,
        spec=spec,
        text_length=text_length,
        logit_scale=float(model.logit_scale.item()),
        logit_bias=float(model.logit_bias.item()),
    )


def _converted(checkpoint: Path, revision: str, progress: Progress) -> Converted:
    if _conversions is None:
        return convert_checkpoint(checkpoint, progress)
    key = (str(checkpoint), revision)
    if key not in _conversions:
        _conversions.clear()  # one checkpoint at a time: bounded memory
        _conversions[key] = convert_checkpoint(checkpoint, progress)
    else:
        progress("reusing this process's FP32 conversion of the checkpoint")
    kept = _conversions[key]
    # NNCF and save_model must never touch the kept graphs: every export works on clones.
    return replace(kept, vision=kept.vision.clone(), text=kept.text.clone())


def export_checkpoint(
    checkpoint: Path,
    destination: Path,
    precision: str,
    *,
    info: dict,
    progress: Progress | None = None,
    calibration_size: int = CALIBRATION_SIZE,
) -> dict:
    """Write vision + text IR, tokenizer and manifest for `checkpoint` into the empty `destination`.

    `info` (key, model, revision...) goes into the manifest as is. Returns the manifest.
    """
    say = progress or (lambda message: None)
    import openvino as ov

    _quiet_libraries()
    checkpoint, destination = Path(checkpoint), Path(destination)
    converted = _converted(checkpoint, str(info.get("revision")), say)
    vision, text = converted.vision, converted.text

    if precision == "int8":
        say("compressing the vision tower's weights to INT8")
        vision = compress_weights(vision)
    elif precision == "int8-static":
        say(f"quantizing the vision tower to INT8 (calibrating on {calibration_size} generated sketches)")
        vision = quantize_static(vision, converted.spec, calibration_size)
    if precision != "fp32":
        # The text tower runs once per concept bank (its embeddings are cached), so it gets the cheap,
        # accuracy-safe weight compression only: half the disk and RAM of FP32, no calibration needed.
        say("compressing the text tower's weights to INT8")
        text = compress_weights(text)

    say(f"saving IR and tokenizer to {destination}")
    # compress_to_fp16=False: "fp32" means FP32 on disk too, and INT8 graphs keep their float parts exact.
    ov.save_model(vision, destination / VISION_FILE, compress_to_fp16=False)
    ov.save_model(text, destination / TEXT_FILE, compress_to_fp16=False)
    converted.tokenizer.save_pretrained(destination / TOKENIZER_DIR)
    tokenizer_config = json.loads((destination / TOKENIZER_DIR / "tokenizer_config.json").read_text())
    tokenizer_class = type(converted.tokenizer).__name__
    manifest_info = {
        **info,
        "precision": precision,
        "embed_dim": int(vision.outputs[0].get_partial_shape()[1].get_length()),
        "logit_scale": converted.logit_scale,
        "logit_bias": converted.logit_bias,
        "lowercase_prompts": _lowercase_prompts(
            str(info.get("model", "")), tokenizer_class, tokenizer_config
        ),
        "text_length": converted.text_length,
        "tokenizer_class": tokenizer_class,
        "preprocess": converted.spec.to_dict(),
    }
    return write_manifest(destination, manifest_info)
