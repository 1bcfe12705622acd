"""The encoder as a Triton Inference Server service (PyTriton), spoken to over KServe V2.

Runs in its own environment (requirements-encoder.txt; scripts/serve_encoder.sh builds it): PyTriton pins
numpy < 2 and its gRPC client clashes with the app's protobuf. It serves the same compiled OpenVINO towers
as the in-process encoder, loaded from the same IR cache by the same code (OUTLYNE_MODEL,
OUTLYNE_PRECISION, OUTLYNE_CACHE_DIR, OUTLYNE_THREADS), and exports nothing itself: torch is not in this
environment, so scripts/serve_encoder.sh exports first with the app's Python when the cache lacks the model.

Dynamic batching: Triton queues concurrent requests for up to `max_queue_delay_us` and hands them to the
`@batch` callables as one stacked batch of at most `max_batch_size` rows, which one OpenVINO inference then
runs. Readiness per model is Triton's `/v2/models/NAME/ready`; statistics (with batch sizes) are
`/v2/models/stats` and Prometheus metrics on the metrics port.
"""

from __future__ import annotations

import json
import signal
import sys
from dataclasses import dataclass

import numpy as np

from outlyne.config import Config
from outlyne.errors import OutlyneError
from outlyne.model import wire

# PyTriton 0.7 restricts these endpoints behind a random token by default, and "statistics" among them.
# Here statistics stay open, so operators and tests can watch batching without a secret, and everything
# that can change or reveal the server stays closed: model-repository (load/unload), shared-memory
# registration, trace and logging settings, and model-config (it shows the workspace path on disk).
# Nobody holds the random token, so these are simply off. Inference, metadata and health stay open.
RESTRICTED_ENDPOINTS = ["shared-memory", "model-repository", "model-config", "trace", "logging"]


@dataclass(frozen=True)
class ServiceOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    metrics_port: int | None = None  # None: port + 2, as Triton's defaults (8000, 8002) are spaced
    name: str = wire.DEFAULT_NAME
    max_batch_size: int = 16
    max_queue_delay_us: int = 2000
    dynamic_batching: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch_size <= 256:
            raise OutlyneError(f"--max-batch-size must lie in 1..256, not {self.max_batch_size}.")
        if not 0 <= self.max_queue_delay_us <= 1_000_000:
            raise OutlyneError(f"--max-queue-delay-us must lie in 0..1000000, not {self.max_queue_delay_us}.")


def _load_encoder(config: Config):
    from outlyne.model.encoder import load_encoder

    try:
        return load_encoder(config, progress=lambda message: print(message, file=sys.stderr, flush=True))
    except ModuleNotFoundError as error:  # the exporter needs torch, which this environment lacks
        raise OutlyneError(
            f"{config.model} ({config.precision}) is not exported in {config.cache_dir} yet and this "
            f"environment cannot export it (no {error.name}): run `python -m outlyne export` with the app's "
            "Python first (scripts/serve_encoder.sh does)."
        ) from None


def service_info(encoder, options: ServiceOptions) -> dict:
    """What a client needs to behave exactly like the in-process encoder (see RemoteEncoder)."""
    return {
        "identity": encoder.identity,
        "model": encoder.model_name,
        "precision": encoder.precision,
        "embed_dim": encoder.embed_dim,
        "logit_scale": encoder.logit_scale,
        "logit_bias": encoder.logit_bias,
        "lowercase_prompts": encoder.lowercase_prompts,
        "preprocess": encoder.preprocess_spec.to_dict(),
        "max_batch_size": options.max_batch_size,
    }


def _infer_functions(encoder, info: dict):
    from pytriton.decorators import batch

    info_bytes = json.dumps(info).encode("utf-8")

    @batch
    def embed_images(IMAGES: np.ndarray) -> dict[str, np.ndarray]:
        # Already at the model's size, so this is the in-process path minus the resize: same pixel values.
        return {wire.EMBEDDINGS: encoder.embed_images(list(IMAGES), batch_size=len(IMAGES))}

    @batch
    def embed_texts(TEXTS: np.ndarray) -> dict[str, np.ndarray]:
        texts = [bytes(item)[: wire.MAX_TEXT_BYTES].decode("utf-8", "replace") for item in TEXTS[:, 0]]
        return {wire.EMBEDDINGS: encoder.embed_texts(texts)}

    @batch
    def describe(REQUEST: np.ndarray) -> dict[str, np.ndarray]:
        return {wire.INFO: np.array([[info_bytes]] * len(REQUEST), dtype=object)}

    return embed_images, embed_texts, describe


def serve(options: ServiceOptions, config: Config) -> None:
    """Load the towers, start Triton, serve until SIGINT or SIGTERM, stop Triton (which can take 30 s)."""
    try:
        from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
        from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig
    except ImportError as error:
        raise OutlyneError(
            f"PyTriton is not installed in this environment ({error.name}): "
            "run `bash scripts/serve_encoder.sh --port PORT`, which builds the service's own environment."
        ) from None

    encoder = _load_encoder(config)
    spec = encoder.preprocess_spec
    info = service_info(encoder, options)
    embed_images, embed_texts, describe = _infer_functions(encoder, info)

    def batching(max_batch_size: int) -> ModelConfig:
        batcher = (
            DynamicBatcher(max_queue_delay_microseconds=options.max_queue_delay_us)
            if options.dynamic_batching
            else None  # each request runs alone (it may still carry several images)
        )
        return ModelConfig(max_batch_size=max_batch_size, batcher=batcher)

    triton_config = TritonConfig(
        http_address=options.host,
        http_port=options.port,
        allow_grpc=False,  # KServe V2 over HTTP only: one port to open, no protobuf on the client
        allow_metrics=True,
        metrics_address=options.host,
        metrics_port=options.metrics_port or options.port + 2,
        exit_on_error=True,
        log_verbose=0,
    )
    security = TritonSecurityConfig(restricted_endpoints=list(RESTRICTED_ENDPOINTS))
    embeddings = Tensor(name=wire.EMBEDDINGS, dtype=np.float32, shape=(encoder.embed_dim,))

    # SIGTERM (docker stop, kill) takes the same clean path as Ctrl+C: Triton stops and PyTriton deletes
    # its workspace (~22 MB under ~/.cache/pytriton) instead of leaving it and a tritonserver behind.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with Triton(config=triton_config, security_config=security) as triton:
        image_input = Tensor(name=wire.IMAGES, dtype=np.uint8, shape=(spec.height, spec.width, 3))
        text_input = Tensor(name=wire.TEXTS, dtype=bytes, shape=(1,))
        for model_name, infer_func, model_input in (
            (wire.vision_model(options.name), embed_images, image_input),
            (wire.text_model(options.name), embed_texts, text_input),
        ):  # the two towers are served alike: batched, one embedding out per input
            triton.bind(
                model_name=model_name,
                infer_func=infer_func,
                inputs=[model_input],
                outputs=[embeddings],
                config=batching(options.max_batch_size),
                strict=True,
            )
        triton.bind(
            model_name=wire.info_model(options.name),
            infer_func=describe,
            inputs=[Tensor(name=wire.REQUEST, dtype=bytes, shape=(1,))],
            outputs=[Tensor(name=wire.INFO, dtype=bytes, shape=(1,))],
            config=ModelConfig(max_batch_size=1, batcher=None),
        )
        print(
            f"serving {encoder.model_name} ({encoder.precision}) as {options.name}_vision/_text/_info on "
            f"http://{options.host}:{options.port} (metrics on port {triton_config.metrics_port}, "
            f"dynamic batching {'on' if options.dynamic_batching else 'off'}, "
            f"max batch {options.max_batch_size})",
            file=sys.stderr,
            flush=True,
        )
        triton.serve()
