"""The encoder as a client of a KServe V2 server (OUTLYNE_ENCODER=kserve-v2://HOST:PORT[/NAME]).

Satisfies the same Embedder protocol as the in-process OpenVinoEncoder, so nothing after start-up knows
which one it has. The wire format is described in wire.py; `python -m outlyne serve-encoder` (service.py)
is the server, but any KServe V2 server exposing the same three models would do.

Transport: one httpx.Client (thread-safe, a pool of keep-alive connections) with connect and read
timeouts, and tensors in the binary extension (JSON-encoded tensors cost over 200 ms per image). A pooled
connection the server dropped (a restart, an idle timeout) fails on its next use; inference is
idempotent, so a failed request is retried once on a fresh connection before it becomes an error.
Every failure a user can meet is one EncoderUnavailable sentence naming OUTLYNE_ENCODER.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np

from outlyne.errors import EncoderUnavailable, first_line
from outlyne.model import wire
from outlyne.model.embedder import ImageInput
from outlyne.model.preprocess import PreprocessSpec, load_image, resized_rgb

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 60.0  # a full batch of thumbnails on a busy 2-core service
MAX_RESPONSE_HEADER = 1 << 20  # the JSON part of a response: a few hundred bytes in practice


class RemoteEncoder:
    """Embeds through a KServe V2 service. Read-only after construction; safe to call from threads."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        read_timeout: float = READ_TIMEOUT_S,
    ) -> None:
        self.url = url
        self.endpoint = wire.parse_endpoint(url)
        self._client = httpx.Client(
            base_url=self.endpoint.base_url,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            headers={"User-Agent": "outlyne-remote-encoder"},
        )
        try:
            self._describe()
        except BaseException:
            self._client.close()  # a client that failed to start holds no sockets
            raise

    def _describe(self) -> None:
        """Read what the service serves and check it is what this client sends."""
        info = self._read_info()
        try:
            self.identity: str = str(info["identity"])
            self.model_name: str = str(info["model"])
            self.precision: str = str(info["precision"])
            self.embed_dim: int = int(info["embed_dim"])
            self.logit_scale: float = float(info["logit_scale"])
            self.logit_bias: float = float(info["logit_bias"])
            self.lowercase_prompts: bool = bool(info["lowercase_prompts"])
            self.preprocess_spec = PreprocessSpec.from_dict(info["preprocess"])
            self.max_batch_size: int = max(1, int(info["max_batch_size"]))
        except (KeyError, TypeError, ValueError) as error:
            raise self._error(f"its {wire.info_model(self.endpoint.name)} model answered nonsense") from error
        self._check_model(
            wire.vision_model(self.endpoint.name),
            wire.IMAGES,
            "UINT8",
            [-1, self.preprocess_spec.height, self.preprocess_spec.width, 3],
        )
        self._check_model(wire.text_model(self.endpoint.name), wire.TEXTS, "BYTES", [-1, 1])

    # -- the Embedder protocol ----------------------------------------------------------------------------

    def embed_images(self, images: Sequence[ImageInput], batch_size: int | None = None) -> np.ndarray:
        """Resized here (see wire.py), sent max_batch_size images per request."""
        spec = self.preprocess_spec
        step = max(1, min(batch_size or self.max_batch_size, self.max_batch_size))
        rows = [np.zeros((0, self.embed_dim), np.float32)]
        for start in range(0, len(images), step):
            chunk = [load_image(i) if isinstance(i, str | Path) else i for i in images[start : start + step]]
            pixels = np.stack([resized_rgb(image, spec) for image in chunk])
            rows.append(self._infer(wire.vision_model(self.endpoint.name), wire.IMAGES, pixels))
        return np.concatenate(rows)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        encoded = [text.encode("utf-8")[: wire.MAX_TEXT_BYTES] for text in texts]
        rows = [np.zeros((0, self.embed_dim), np.float32)]
        for start in range(0, len(encoded), self.max_batch_size):
            chunk = encoded[start : start + self.max_batch_size]
            rows.append(self._infer(wire.text_model(self.endpoint.name), wire.TEXTS, chunk))
        return np.concatenate(rows)

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"RemoteEncoder({self.url!r}, identity={self.identity!r})"

    # -- KServe V2 over HTTP ------------------------------------------------------------------------------

    def _error(self, reason: str) -> EncoderUnavailable:
        return EncoderUnavailable(f"The encoder service OUTLYNE_ENCODER={self.url} {reason}.")

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """One HTTP exchange, retried once when the connection fails (a dropped keep-alive connection)."""
        failure: Exception | None = None
        for _attempt in range(2):
            try:
                return self._client.request(method, path, **kwargs)
            except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout) as error:
                # A busy server, not a dead connection: retrying would only add to its queue.
                raise self._error("did not answer in time") from error
            except httpx.TransportError as error:
                failure = error
        reason = first_line(failure, 120) or type(failure).__name__
        raise self._error(f"is unreachable ({reason})") from failure

    def _get_json(self, path: str) -> dict:
        response = self._request("GET", path)
        if response.status_code != 200:
            raise self._error(f"answered {response.status_code} to {path}")
        try:
            return response.json()
        except ValueError as error:
            raise self._error(f"answered something other than JSON to {path}") from error

    def _check_model(self, model: str, input_name: str, datatype: str, shape: list[int]) -> None:
        """The model's own metadata must match what this client sends: a mismatch is a plain error now,
        not a 400 on every request later."""
        metadata = self._get_json(f"/v2/models/{model}")
        inputs = {item.get("name"): item for item in metadata.get("inputs", []) if isinstance(item, dict)}
        outputs = {item.get("name"): item for item in metadata.get("outputs", []) if isinstance(item, dict)}
        found = inputs.get(input_name) or {}
        output = outputs.get(wire.EMBEDDINGS) or {}
        if (
            list(inputs) != [input_name]
            or found.get("datatype") != datatype
            or found.get("shape") != shape
            or output.get("datatype") != "FP32"
            or output.get("shape") != [-1, self.embed_dim]
        ):
            raise self._error(
                f"has a model {model} whose inputs do not match (expected {input_name} {datatype} {shape})"
            )

    def _read_info(self) -> dict:
        model = wire.info_model(self.endpoint.name)
        raw = self._post_infer(model, wire.REQUEST, [b""], wire.INFO)
        try:
            (text,) = wire.decode_bytes(raw, 1)
            info = json.loads(text)
        except ValueError as error:
            raise self._error(f"its {model} model answered nonsense") from error
        if not isinstance(info, dict):
            raise self._error(f"its {model} model answered nonsense")
        return info

    def _infer(self, model: str, input_name: str, data: np.ndarray | list[bytes]) -> np.ndarray:
        count = len(data)
        raw = self._post_infer(model, input_name, data, wire.EMBEDDINGS)
        if len(raw) != count * self.embed_dim * 4:
            raise self._error(f"returned {len(raw)} bytes from {model} for {count} embeddings")
        return np.frombuffer(raw, dtype="<f4").reshape(count, self.embed_dim).astype(np.float32)

    def _post_infer(self, model: str, input_name: str, data: np.ndarray | list[bytes], output: str) -> bytes:
        """POST /v2/models/MODEL/infer with one binary input; returns the one binary output's bytes."""
        if isinstance(data, np.ndarray):
            payload, datatype, shape = data.tobytes(), wire.DATATYPES[data.dtype], list(data.shape)
        else:
            payload, datatype, shape = wire.encode_bytes(list(data)), "BYTES", [len(data), 1]
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": input_name,
                        "datatype": datatype,
                        "shape": shape,
                        "parameters": {"binary_data_size": len(payload)},
                    }
                ],
                "outputs": [{"name": output, "parameters": {"binary_data": True}}],
            }
        ).encode()
        response = self._request(
            "POST",
            f"/v2/models/{model}/infer",
            content=header + payload,
            headers={wire.HEADER_LENGTH: str(len(header)), "Content-Type": "application/octet-stream"},
        )
        body = response.content
        if response.status_code != 200:
            detail = ""
            with contextlib.suppress(ValueError, AttributeError):
                detail = f": {first_line(response.json().get('error', ''), 160)}"
            raise self._error(f"answered {response.status_code} for {model}{detail}")
        try:
            length = int(response.headers.get(wire.HEADER_LENGTH, len(body)))
            if not 0 < length <= min(len(body), MAX_RESPONSE_HEADER):
                raise ValueError("bad header length")
            outputs = json.loads(body[:length])["outputs"]
            (entry,) = [item for item in outputs if item.get("name") == output]
            size = int(entry["parameters"]["binary_data_size"])
        except (ValueError, KeyError, TypeError) as error:
            raise self._error(f"answered {model} without a binary {output} tensor") from error
        if len(outputs) != 1 or length + size != len(body):
            raise self._error(f"answered {model} with an unexpected body")
        return body[length:]
