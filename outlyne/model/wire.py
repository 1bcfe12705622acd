"""The wire contract between the remote encoder (remote.py) and the encoder service (service.py).

KServe V2 ("Open Inference Protocol") over HTTP, as NVIDIA Triton speaks it. Three models per service:

    NAME_vision  IMAGES   UINT8 [-1, H, W, 3]  RGB, already resized to the model's H x W by the client
                 -> EMBEDDINGS FP32 [-1, D]     L2-normalized
    NAME_text    TEXTS    BYTES [-1, 1]         UTF-8 prompts, tokenized on the server
                 -> EMBEDDINGS FP32 [-1, D]
    NAME_info    REQUEST  BYTES [-1, 1]         (ignored)
                 -> INFO      BYTES [-1, 1]     JSON: identity, logit scale/bias, preprocess spec, limits

Why uint8 images at the model's size: 150 KB per 224 px image on the wire instead of 600 KB of float32
pixel values, arbitrary upload sizes never reach the service, and resizing (the costly part of
preprocessing) is spread over the front-ends. The service applies rescale/normalize itself, through the
same code as the in-process encoder, so both give the same pixel values bit for bit.
Why texts as BYTES: the front-ends need no tokenizer and no tokenizer files.

This module only holds names and encodings: it imports numpy and nothing else, so both environments
(the app's and the service's, which pins numpy < 2) can import it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from outlyne.errors import ConfigError

DEFAULT_NAME = "siglip"
SCHEMES = {"kserve-v2": "http", "http": "http", "https": "https"}

IMAGES = "IMAGES"
TEXTS = "TEXTS"
REQUEST = "REQUEST"
EMBEDDINGS = "EMBEDDINGS"
INFO = "INFO"

MAX_TEXT_BYTES = 2048
"""Per prompt. SigLIP keeps 64 tokens; longer text only costs tokenizer time on the service."""

HEADER_LENGTH = "Inference-Header-Content-Length"
"""The binary tensor extension: the body is this many bytes of JSON, then the raw tensors in order."""


def vision_model(name: str) -> str:
    return f"{name}_vision"


def text_model(name: str) -> str:
    return f"{name}_text"


def info_model(name: str) -> str:
    return f"{name}_info"


@dataclass(frozen=True)
class Endpoint:
    base_url: str  # scheme://host:port, no trailing slash
    name: str  # the model name prefix

    def __str__(self) -> str:
        return f"{self.base_url}/{self.name}"


def parse_endpoint(text: str) -> Endpoint:
    """kserve-v2://HOST:PORT[/NAME] (plain HTTP), http://... or https://... -> Endpoint."""
    parts = urlsplit(text.strip())
    scheme = SCHEMES.get(parts.scheme)
    name = parts.path.strip("/") or DEFAULT_NAME
    try:
        port = parts.port
    except ValueError:
        port = None
    if scheme is None or not parts.hostname or port is None or "/" in name or parts.query:
        raise ConfigError(
            f"OUTLYNE_ENCODER={text!r} is not kserve-v2://HOST:PORT[/NAME] (or http://HOST:PORT[/NAME])."
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return Endpoint(f"{scheme}://{host}:{port}", name)


def encode_bytes(items: list[bytes]) -> bytes:
    """A BYTES tensor in the binary extension: each element is a 4-byte little-endian length, then data."""
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def decode_bytes(data: bytes, count: int) -> list[bytes]:
    items, offset = [], 0
    for _ in range(count):
        if offset + 4 > len(data):
            raise ValueError("BYTES tensor is shorter than its shape says")
        (length,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if offset + length > len(data):
            raise ValueError("BYTES tensor is shorter than its shape says")
        items.append(data[offset : offset + length])
        offset += length
    return items


DATATYPES = {np.dtype(np.uint8): "UINT8", np.dtype(np.float32): "FP32"}
