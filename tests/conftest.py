"""Session fixtures: the tiny random SigLIP checkpoint every model test runs the real code on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .fakes import FakeEncoder
from .tiny_checkpoint import build_tiny_siglip

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
