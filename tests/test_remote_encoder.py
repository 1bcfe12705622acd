"""The encoder as a Triton service over KServe V2, against the real thing: scripts/serve_encoder.sh builds
PyTriton's environment and serves the tiny checkpoint; RemoteEncoder talks to it over HTTP.

One service for the module (Triton starts in ~10 s here, stops in up to 30 s); the test that kills and
restarts it runs last. If the service's environment cannot be built, every test here fails with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from gradio_client import Client, handle_file

from outlyne.config import Config
from outlyne.errors import ConfigError, EncoderUnavailable
from outlyne.model import wire
from outlyne.model.remote import RemoteEncoder
from outlyne.search.galleries.milvus import index_into_milvus
from outlyne.search.galleries.served import SERVED_PREFIX
from outlyne_dev.app_server import (
    ROOT,
    AppServer,
    app_environment,
    free_port,
    make_gallery,
    wait_until_answers,
)
from outlyne_dev.encoder_service import EncoderService, ServiceEnvironmentError, build_environment, get_json
from tests.support.milvus_server import start_milvus_server

# A long queue delay makes Triton wait for the other concurrent requests, so batches form even when the
# tiny model answers in a millisecond (the default, 2 ms, is for real models).
QUEUE_DELAY_US = 100_000


@pytest.fixture(scope="module")
def service(tiny_encoder, tiny_checkpoint: Path, encoder_cache_dir: Path, tmp_path_factory):
    """The service over the session's IR cache (tiny_encoder exported it), fp32 like tiny_encoder."""
    try:
        build_environment()
    except ServiceEnvironmentError as error:
        pytest.fail(f"The encoder service's environment could not be built: {error}")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OUTLYNE_")},
        "OUTLYNE_MODEL": str(tiny_checkpoint),
        "OUTLYNE_PRECISION": "fp32",
        "OUTLYNE_CACHE_DIR": str(encoder_cache_dir),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    running = EncoderService(
        tmp_path_factory.mktemp("encoder-service"),
        env,
        arguments=["--max-batch-size", "8", "--max-queue-delay-us", str(QUEUE_DELAY_US)],
    )
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def remote(service: EncoderService) -> RemoteEncoder:
    encoder = RemoteEncoder(service.url)
    yield encoder
    encoder.close()


def _images(count: int, seed: int = 0) -> list[np.ndarray]:
    """Random RGB arrays of assorted sizes (some need resizing, some are the model's 32 px already)."""
    rng = np.random.default_rng(seed)
    sizes = [(32, 32), (48, 20), (17, 90), (200, 150)]
    return [rng.integers(0, 256, (*sizes[i % len(sizes)], 3), dtype=np.uint8) for i in range(count)]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_config_reads_the_encoder_address() -> None:
    assert Config.from_env({}).encoder is None
    config = Config.from_env({"OUTLYNE_ENCODER": "kserve-v2://10.0.0.5:8000"})
    assert wire.parse_endpoint(config.encoder) == wire.Endpoint("http://10.0.0.5:8000", "siglip")
    with pytest.raises(ConfigError, match="OUTLYNE_ENCODER"):
        Config.from_env({"OUTLYNE_ENCODER": "kserve-v2://no-port"})


class FakeKServe(BaseHTTPRequestHandler):
    """A KServe V2 server whose vision model takes float pixel values: not what RemoteEncoder sends."""

    info: ClassVar[dict] = {
        "identity": "fake",
        "model": "fake",
        "precision": "fp32",
        "embed_dim": 4,
        "logit_scale": 1.0,
        "logit_bias": 0.0,
        "lowercase_prompts": False,
        "preprocess": {
            "height": 8,
            "width": 8,
            "resample": 3,
            "rescale_factor": 1 / 255,
            "mean": [0.5] * 3,
            "std": [0.5] * 3,
        },
        "max_batch_size": 4,
    }
    metadata: ClassVar[dict] = {
        "siglip_vision": {"inputs": [{"name": "PIXEL_VALUES", "datatype": "FP32", "shape": [-1, 3, 8, 8]}]},
        "siglip_text": {"inputs": [{"name": "TEXTS", "datatype": "BYTES", "shape": [-1, 1]}]},
    }

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def _send(self, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(200)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        model = self.path.rsplit("/", 1)[-1]
        outputs = [{"name": "EMBEDDINGS", "datatype": "FP32", "shape": [-1, 4]}]
        body = json.dumps({"name": model, **self.metadata.get(model, {}), "outputs": outputs}).encode()
        self._send(body, {"Content-Type": "application/json"})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        data = wire.encode_bytes([json.dumps(self.info).encode()])
        header = json.dumps(
            {
                "outputs": [
                    {
                        "name": "INFO",
                        "datatype": "BYTES",
                        "shape": [1, 1],
                        "parameters": {"binary_data_size": len(data)},
                    }
                ]
            }
        ).encode()
        self._send(header + data, {wire.HEADER_LENGTH: str(len(header))})


def test_a_service_with_other_inputs_or_none_at_all_is_one_plain_error() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKServe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(EncoderUnavailable) as mismatch:
            RemoteEncoder(f"kserve-v2://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
    message = str(mismatch.value)
    assert "OUTLYNE_ENCODER=" in message and "inputs do not match" in message and "IMAGES UINT8" in message
    with pytest.raises(EncoderUnavailable, match=r"OUTLYNE_ENCODER=.* is unreachable") as refused:
        RemoteEncoder(f"kserve-v2://127.0.0.1:{free_port()}")
    assert len(str(refused.value).splitlines()) == 1


def test_remote_matches_the_in_process_encoder(remote: RemoteEncoder, tiny_encoder) -> None:
    assert remote.identity == tiny_encoder.identity
    assert (remote.embed_dim, remote.logit_scale, remote.logit_bias) == (
        tiny_encoder.embed_dim,
        tiny_encoder.logit_scale,
        tiny_encoder.logit_bias,
    )
    images = _images(19)  # more than one request of max batch 8, and a partial last one
    local, far = tiny_encoder.embed_images(images), remote.embed_images(images)
    assert far.shape == local.shape == (19, tiny_encoder.embed_dim) and far.dtype == np.float32
    assert _cosines(local, far).min() >= 0.9999

    texts = ["a cat", "a drawing of a house", "ünïcödé 草", "", "long " * 400]
    local, far = tiny_encoder.embed_texts(texts), remote.embed_texts(texts)
    assert _cosines(local, far).min() >= 0.9999
    assert remote.embed_images([]).shape == remote.embed_texts([]).shape == (0, tiny_encoder.embed_dim)


def _batch_counts(service: EncoderService, model: str) -> dict[int, int]:
    """Batch size -> how many times the model ran a batch of that size."""
    stats = service.statistics(model)["batch_stats"]
    return {row["batch_size"]: int(row["compute_infer"]["count"]) for row in stats}


def test_concurrent_requests_are_batched(remote: RemoteEncoder, service: EncoderService) -> None:
    model = wire.vision_model(service.name)
    before = _batch_counts(service, model)
    clients = 8
    image = _images(1, seed=3)
    start = threading.Barrier(clients)

    def one_request(_: int) -> np.ndarray:
        start.wait()
        return remote.embed_images(image)

    # Wait on the state (a batch larger than one in the statistics), not on time: each round sends
    # `clients` single-image requests at once, and Triton merges those that arrive within the queue delay.
    merged: dict[int, int] = {}
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(10):
            results = list(pool.map(one_request, range(clients)))
            after = _batch_counts(service, model)
            merged = {size: n - before.get(size, 0) for size, n in after.items() if size > 1}
            merged = {size: n for size, n in merged.items() if n > 0}
            if merged:
                break
    assert merged, f"every single-image request ran alone: {after}"
    assert all(np.allclose(result, results[0], atol=1e-5) for result in results)


def test_observability_is_open_and_control_is_closed(service: EncoderService) -> None:
    # Statistics and metadata need no token; the model repository (load/unload) and config stay closed.
    assert "model_stats" in get_json(f"{service.http}/v2/models/stats")
    with pytest.raises(urllib.error.HTTPError) as closed:
        get_json(f"{service.http}/v2/models/{wire.vision_model(service.name)}/config")
    assert closed.value.code == 403
    with urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=5) as metrics:
        assert b"nv_inference_request_success" in metrics.read()


def test_a_bad_address_or_a_mismatched_model_is_one_plain_error(service: EncoderService) -> None:
    with pytest.raises(ConfigError, match="OUTLYNE_ENCODER"):
        wire.parse_endpoint("grpc://127.0.0.1:8001")
    with pytest.raises(EncoderUnavailable, match="OUTLYNE_ENCODER") as missing:
        RemoteEncoder(f"kserve-v2://127.0.0.1:{service.port}/no_such_model")
    assert "Traceback" not in str(missing.value) and len(str(missing.value).splitlines()) == 1


def test_two_front_ends_share_one_encoder_service_and_one_milvus(
    service: EncoderService, remote: RemoteEncoder, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """Two app.py processes on their own ports, configured only by environment, both answer searches
    from the same Milvus gallery with embeddings from the same encoder service."""
    milvus = start_milvus_server(tmp_path / "milvus-data")
    apps: list[AppServer] = []
    try:
        gallery = make_gallery(tmp_path / "gallery", count=8)
        report = index_into_milvus(milvus.uri, gallery, remote)
        assert report.added == 8
        concepts = tmp_path / "concepts.json"
        labels = ["house", "cat", "tree", "car", "sun", "fish"]
        concepts.write_text(
            json.dumps({"version": 1, "concepts": [{"label": label, "group": "thing"} for label in labels]})
        )
        for name in ("a", "b"):
            port = free_port()
            env = app_environment(tmp_path / name, tiny_checkpoint, gallery, port)
            env.update(
                OUTLYNE_ENCODER=service.url,
                OUTLYNE_SEARCH=f"milvus:{milvus.uri}",
                OUTLYNE_CONCEPTS=str(concepts),
            )
            log_path = tmp_path / f"app-{name}.log"
            with log_path.open("w") as log:
                process = subprocess.Popen(
                    [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
                )
            apps.append(AppServer(f"http://127.0.0.1:{port}/", process, log_path, gallery, env))
        answers = []
        for app in apps:
            wait_until_answers(app)
            result = Client(app.url, verbose=False).predict(
                handle_file(str(gallery / "drawing-03.png")), max_results=4, api_name="/search"
            )
            assert result["backend"] == "milvus" and result["warning"] is None, app.log_tail()
            answers.append([(item["image"], round(item["similarity"], 4)) for item in result["results"]])
            for item in result["results"]:  # app URLs (never paths), served by each app from Milvus
                assert item["image"].startswith(SERVED_PREFIX), item["image"]
                with urllib.request.urlopen(app.url + item["image"].lstrip("/"), timeout=30) as served:
                    assert served.headers["Content-Type"] == "image/jpeg"
                    assert served.read(3) == b"\xff\xd8\xff"  # a JPEG re-encoded by the app
        assert answers[0] == answers[1] and len(answers[0]) == 4
    finally:
        for app in apps:
            app.stop()
        milvus.stop()


def test_the_server_going_away_is_a_plain_error_and_its_return_is_picked_up(
    remote: RemoteEncoder, service: EncoderService
) -> None:
    images = _images(3, seed=5)
    expected = remote.embed_images(images)  # keep-alive connections are now in the pool
    service.kill()
    with pytest.raises(EncoderUnavailable) as gone:
        remote.embed_images(images)
    message = str(gone.value)
    assert "OUTLYNE_ENCODER=" in message and service.url in message
    assert "Traceback" not in message and len(message.splitlines()) == 1
    service.start()  # same port: the pooled connections are stale, the next request must reconnect
    assert _cosines(remote.embed_images(images), expected).min() >= 0.9999
