"""The runtime encoder: cached OpenVINO IR -> compiled models -> L2-normalized embeddings.

Never imports torch: a start with a warm cache reads the manifest, compiles the vision graph (OpenVINO's
CACHE_DIR makes that a blob load) and is ready. When the cache for (model identity, precision, exporter
version) is missing or damaged, `load_encoder` runs the exporter (which imports torch) once, then loads.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import openvino as ov
from filelock import FileLock

from outlyne.config import Config
from outlyne.errors import ModelUnavailable, first_line
from outlyne.model import ir_cache
from outlyne.model import source as model_source
from outlyne.model.embedder import ImageInput
from outlyne.model.preprocess import PreprocessSpec, load_image, preprocess
from outlyne.progress import Progress

VISION_FILE = "vision.xml"  # kept equal to export.VISION_FILE (not imported: export pulls in NNCF)
TEXT_FILE = "text.xml"
TOKENIZER_DIR = "tokenizer"


@functools.cache
def _off_the_main_thread() -> ThreadPoolExecutor:
    """One long-lived thread that runs inference for callers on the main thread (the CLI, `bench`).

    Measured on this project's 2-core AMD EPYC VM (AVX2): the int8-static vision graph took 1140 ms per
    image when `infer` was called from the process's main thread and 575 ms from any other thread, the same
    compiled model and request; FP32 and weight-only INT8 ran at the same speed on either. The app's
    handlers already run on Gradio's worker threads."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="outlyne-inference")


class _Tower:
    """One compiled graph plus a pool of infer requests.

    An infer request is not safe to share between threads, and the Gradio queue calls from several
    threads; a request per call would allocate each time, so idle requests are reused. The pool only grows
    to the number of concurrent callers.
    """

    def __init__(self, compiled: ov.CompiledModel) -> None:
        self.compiled = compiled
        self._idle: list[ov.InferRequest] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _request(self) -> Iterator[ov.InferRequest]:
        with self._lock:
            request = self._idle.pop() if self._idle else self.compiled.create_infer_request()
        try:
            yield request
        finally:
            with self._lock:
                self._idle.append(request)

    def run(self, batch: np.ndarray) -> np.ndarray:
        if threading.current_thread() is threading.main_thread():
            return _off_the_main_thread().submit(self._run, batch).result()
        return self._run(batch)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with self._request() as request:
            request.infer({0: batch}, share_inputs=True)
            return np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)


class OpenVinoEncoder:
    """Satisfies outlyne.model.embedder.Embedder. Read-only after construction; safe to call from threads."""

    def __init__(self, folder: Path, manifest: dict, config: Config, *, exported_now: bool = False) -> None:
        self.cache_folder = Path(folder)
        self.identity: str = manifest["key"]
        self.model_name: str = manifest["model"]
        self.precision: str = manifest["precision"]
        self.embed_dim: int = int(manifest["embed_dim"])
        self.logit_scale: float = float(manifest["logit_scale"])
        self.logit_bias: float = float(manifest["logit_bias"])
        self.lowercase_prompts: bool = bool(manifest["lowercase_prompts"])
        self.preprocess_spec = PreprocessSpec.from_dict(manifest["preprocess"])
        self.text_length = int(manifest["text_length"])
        self.exported_now = exported_now
        self.batch_size = config.batch_size
        self._tokenizer_class = manifest["tokenizer_class"]
        self._core = ov.Core()
        self._core.set_property({"CACHE_DIR": str(Path(config.cache_dir) / "ov-compiled")})
        self._properties: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY"}
        if config.threads:
            self._properties["INFERENCE_NUM_THREADS"] = config.threads
        if self.precision == "fp32":
            # CPUs with bf16 units would otherwise run "fp32" in bf16 by default; fp32 promises exactness.
            self._properties["INFERENCE_PRECISION_HINT"] = "f32"
        self._vision = _Tower(self._compile(VISION_FILE))
        # The text side is compiled on first use: most starts only embed images (concept text embeddings
        # are cached on disk), and this halves the cold start.
        self._text: _Tower | None = None
        self._tokenizer = None
        self._text_lock = threading.Lock()

    def _compile(self, name: str) -> ov.CompiledModel:
        # Compiling from the path (not a read ov.Model) lets a CACHE_DIR hit skip reading the IR entirely.
        return self._core.compile_model(str(self.cache_folder / name), "CPU", self._properties)

    @property
    def threads(self) -> int:
        return int(self._vision.compiled.get_property("INFERENCE_NUM_THREADS"))

    def embed_images(self, images: Sequence[ImageInput], batch_size: int | None = None) -> np.ndarray:
        images = [load_image(image) if isinstance(image, str | Path) else image for image in images]
        step = max(1, batch_size or self.batch_size)
        rows = [np.zeros((0, self.embed_dim), np.float32)]
        for start in range(0, len(images), step):
            pixels = preprocess(images[start : start + step], self.preprocess_spec)
            rows.append(self._vision.run(pixels))
        return np.concatenate(rows)

    def _text_side(self):
        with self._text_lock:
            if self._text is None:
                # The concrete tokenizer class loads without torch; AutoTokenizer would import it.
                import transformers

                tokenizer_type = getattr(transformers, self._tokenizer_class)
                self._tokenizer = tokenizer_type.from_pretrained(str(self.cache_folder / TOKENIZER_DIR))
                self._text = _Tower(self._compile(TEXT_FILE))
            return self._tokenizer, self._text

    def tokenize(self, texts: Sequence[str]) -> np.ndarray:
        """(n, text_length) int64 token ids, padded to the fixed length SigLIP was trained with."""
        tokenizer, _ = self._text_side()
        encoded = tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=self.text_length,
            return_tensors="np",
        )
        return encoded["input_ids"].astype(np.int64)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts are embedded verbatim: lowercasing for SigLIP2 is up to the caller (lowercase_prompts)."""
        if not texts:
            return np.zeros((0, self.embed_dim), np.float32)
        _, tower = self._text_side()
        ids = self.tokenize(texts)
        return np.concatenate(
            [tower.run(ids[start : start + self.batch_size]) for start in range(0, len(ids), self.batch_size)]
        )

    def __repr__(self) -> str:
        return f"OpenVinoEncoder({self.identity!r}, folder={str(self.cache_folder)!r})"


def _export_into_cache(
    source: model_source.ModelSource, config: Config, progress: Progress
) -> tuple[Path, dict]:
    """Fetch the weights, export into a staging folder, publish it atomically; returns the live folder."""
    source = model_source.fetch(source)
    key = ir_cache.cache_key(source.identity, config.precision)
    final = ir_cache.entry_folder(config.cache_dir, source.name, config.precision, key)
    progress(f"exporting {source.name} ({config.precision}) to the cache: {final}")
    from outlyne.model import export  # imports torch, transformers' models and NNCF: only when exporting

    staging = ir_cache.staging_folder(config.cache_dir)
    info = {
        "key": key,
        "model": source.name,
        "kind": source.kind,
        "revision": source.revision,
        "exporter_version": ir_cache.exporter_version(),
    }
    try:
        export.export_checkpoint(source.folder, staging, config.precision, info=info, progress=progress)
        ir_cache.read_manifest(staging, key, full=True)  # what we publish must verify
    except BaseException as error:
        ir_cache.discard(staging)
        if isinstance(error, Exception) and not isinstance(error, ModelUnavailable):
            detail = f"{type(error).__name__}: {first_line(error, 300)}"
            raise model_source.unavailable(
                source, f"the checkpoint in {source.folder} could not be exported ({detail})."
            ) from error
        raise
    for _ in range(3):
        if ir_cache.publish(staging, final):
            break
        try:  # the name is taken: by a complete export from another process, or by a damaged folder
            manifest = ir_cache.read_manifest(final, key)
            progress("another process published the same export first; using it")
            ir_cache.discard(staging)
            return final, manifest
        except ir_cache.CacheInvalid:
            ir_cache.discard(final)
    return final, ir_cache.read_manifest(final, key)


def _find_cache(
    source: model_source.ModelSource, config: Config, progress: Progress
) -> tuple[Path, dict] | None:
    """A valid cached export for this source, or None (after saying why, when one was damaged)."""
    if source.identity is None:
        # Weights not on this machine (or a hub id never downloaded here): any export of that name will do.
        folder = ir_cache.find_latest(config.cache_dir, source.name, config.precision)
        key = None
    else:
        key = ir_cache.cache_key(source.identity, config.precision)
        folder = ir_cache.entry_folder(config.cache_dir, source.name, config.precision, key)
    if folder is None or not folder.exists():
        return None
    try:
        return folder, ir_cache.read_manifest(folder, key)
    except ir_cache.CacheInvalid as reason:
        progress(f"cached export is damaged ({reason}); rebuilding it")
        return None


def load_encoder(config: Config, *, progress: Progress | None = None) -> OpenVinoEncoder:
    """The encoder for config.model at config.precision, exporting it first if the cache lacks it."""
    say = progress or (lambda message: None)
    source = model_source.resolve(config.model)
    found = _find_cache(source, config, say)
    if found is not None:
        folder, manifest = found
        try:
            return OpenVinoEncoder(folder, manifest, config)
        except RuntimeError as error:  # OpenVINO could not read/compile it: damaged in a way sizes miss
            say(f"cached export could not be loaded ({first_line(error, 300)}); rebuilding it")
            ir_cache.discard(folder)
    with _export_lock(config.cache_dir):
        # Exports take turns: whoever waited may find the export another process just published, and
        # staging left by a killed run is removed (nobody else can be exporting while we hold the lock).
        found = _find_cache(source, config, say)
        if found is not None:
            return OpenVinoEncoder(*found, config)
        for name in ir_cache.remove_leftovers(config.cache_dir):
            say(f"removed {name}, left by an export that did not finish")
        folder, manifest = _export_into_cache(source, config, say)
    return OpenVinoEncoder(folder, manifest, config, exported_now=True)


@contextlib.contextmanager
def _export_lock(cache_dir: Path) -> Iterator[None]:
    try:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        lock = FileLock(Path(cache_dir) / ir_cache.LOCK)
        lock.acquire()
    except OSError as error:
        reason = os.strerror(error.errno).lower() if error.errno else "it cannot be written"
        raise ModelUnavailable(
            f"The model cache folder (OUTLYNE_CACHE_DIR) cannot be used: {reason}."
        ) from None
    try:
        yield
    finally:
        lock.release()
