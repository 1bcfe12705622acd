"""Shared fixtures: the tiny random SigLIP checkpoint every model test runs the real code on, and the app
(`python app.py`) the API, browser and hostile-input tests call."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image, ImageDraw

from outlyne_dev.app_server import AppServer, shared_app_server
from tests.support.fakes import FakeEncoder
from tests.support.tiny_checkpoint import build_tiny_siglip

if TYPE_CHECKING:
    from gradio_client import Client

# Tests never reach a hub: make any accidental download fail fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight SigLIP checkpoint folder (model, tokenizer, processor), built once per session."""
    return build_tiny_siglip(tmp_path_factory.mktemp("tiny-siglip"))


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture(scope="session", autouse=True)
def _convert_each_checkpoint_once():
    """Exports in this session (one per precision, plus every cache-rebuild test) start from one FP32
    conversion of each checkpoint, as `export --all-precisions` does; the precision-specific steps (NNCF,
    saving, manifest, publishing) still run every time."""
    from outlyne.model.export import reuse_conversions

    with reuse_conversions():
        yield


@pytest.fixture(scope="session")
def encoder_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OUTLYNE_CACHE_DIR shared by the session's real encoders (IR exported once per precision)."""
    return tmp_path_factory.mktemp("outlyne-cache")


@pytest.fixture(scope="session")
def make_tiny_encoder(tiny_checkpoint: Path, encoder_cache_dir: Path):
    """Factory: make_tiny_encoder(precision="fp32") -> the real OpenVINO encoder over the tiny checkpoint,
    exported on first use and shared for the session (encoders are read-only)."""
    from outlyne.config import Config
    from outlyne.model.encoder import load_encoder

    encoders = {}

    def make(precision: str = "fp32"):
        if precision not in encoders:
            config = Config(model=str(tiny_checkpoint), precision=precision, cache_dir=encoder_cache_dir)
            encoders[precision] = load_encoder(config)
        return encoders[precision]

    return make


@pytest.fixture(scope="session")
def tiny_encoder(make_tiny_encoder):
    """The fp32 OpenVINO encoder over the tiny checkpoint (embed_dim 32, image size 32)."""
    return make_tiny_encoder("fp32")


@pytest.fixture(scope="session")
def app(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> AppServer:
    """`python app.py` in a subprocess on the tiny checkpoint and a small local gallery, started once per
    test process and shared by the API, concurrency, browser and Docker tests."""
    return shared_app_server(tmp_path_factory.getbasetemp() / "app-server", tiny_checkpoint)


@pytest.fixture(scope="module")
def app_client(app: AppServer) -> Client:
    """gradio_client's Client of the shared app, one per test module."""
    from gradio_client import Client  # imported here: most tests never call the app

    return Client(app.url, verbose=False)


@pytest.fixture(scope="module")
def house_drawing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A house-like line drawing: black strokes on white, like a saved sketch."""
    image = Image.new("RGB", (300, 240), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([80, 110, 220, 220], outline="black", width=4)
    draw.line([(70, 115), (150, 40), (230, 115)], fill="black", width=4)
    path = tmp_path_factory.mktemp("api") / "house.png"
    image.save(path)
    return path


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium under Playwright (outlyne_dev/browser.py), one per test module. A missing
    chromium or Playwright fails the browser tests; it never skips them."""
    from outlyne_dev.browser import CHROMIUM, launch_chromium

    if not CHROMIUM.exists():
        pytest.fail("Debian chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    with launch_chromium() as launched:
        yield launched
