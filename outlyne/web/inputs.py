"""Image inputs that hand the server the uploaded files, never pixels Gradio decoded.

Gradio's own gr.Image and gr.Sketchpad decode every upload in full before any handler runs (no pixel
limit: a 164 KB PNG declaring 13000 x 13000 becomes 676 MB of RGBA per layer), and report a non-image
with an internal error naming a temporary path. These subclasses pass file paths (or the editor's blobs)
through untouched; outlyne.sketch.load decodes them with the limits of outlyne.images. The editor's
`accept_blobs` server function, which any client can call, is bounded too: a layer index below
MAX_EDITOR_LAYERS, a few MB per blob (Gradio's max_file_size), and a capped store that forgets the oldest.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections import OrderedDict
from typing import Any

import gradio as gr
from fastapi import HTTPException
from gradio.components.base import server
from gradio.components.image_editor import AcceptBlobs, EditorData, EditorDataBlobs
from gradio.data_classes import FileData

from outlyne.images import MAX_IMAGE_BYTES
from outlyne.sketch.load import MAX_EDITOR_LAYERS

# The editor's unclaimed blobs (sent, then never used by an event) are kept up to this total.
BLOB_STORE_BYTES = 64_000_000
_PARTS = ("background", "layer", "composite")


def _file(value: FileData | bytes | None) -> str | bytes | None:
    return value.path if isinstance(value, FileData) else value


class UploadImage(gr.Image):
    """gr.Image whose value reaches the handler as the uploaded file's path (or bytes from a data URL)."""

    def __init__(self, *args: Any, max_bytes: int = MAX_IMAGE_BYTES, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_bytes = max_bytes

    # The browser must see a plain gr.Image: the same front-end component, the same properties.
    def get_block_name(self) -> str:
        return "image"

    def get_block_class(self) -> str:
        return "image"

    def get_config(self, cls: type | None = None) -> dict[str, Any]:
        return super().get_config(cls or gr.Image)

    def preprocess(self, payload: Any) -> str | bytes | None:
        if payload is None:
            return None
        url = payload.url or ""
        if url.startswith("data:"):  # some clipboards paste a data URL rather than a file
            return _data_url_bytes(url, self.max_bytes)
        return payload.path


def _data_url_bytes(url: str, max_bytes: int) -> bytes:
    encoded = url.partition(",")[2]
    if len(encoded) > max_bytes * 4 // 3 + 4:
        raise gr.Error("The pasted image is too large.", print_exception=False)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise gr.Error("The pasted data is not an image.", print_exception=False) from None


class BoundedSketchpad(gr.Sketchpad):
    """gr.Sketchpad whose value reaches the handler as {"background", "layers", "composite"} of file paths
    or bytes, undecoded (outlyne.sketch.load counts the layers and checks every size before decoding)."""

    def __init__(self, *args: Any, max_bytes: int = MAX_IMAGE_BYTES, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_bytes = max_bytes
        self._blobs: OrderedDict[str, EditorDataBlobs] = OrderedDict()
        self._blob_lock = threading.Lock()

    # The browser must see a plain gr.Sketchpad: the editor's front end, the same properties.
    def get_block_name(self) -> str:
        return "imageeditor"

    def get_block_class(self) -> str:
        return "imageeditor"

    def get_config(self, cls: type | None = None) -> dict[str, Any]:
        return super().get_config(cls or gr.Sketchpad)

    def preprocess(self, payload: EditorData | None) -> dict[str, Any] | None:
        if payload is None:
            return None
        value: Any = payload
        if payload.id is not None:
            with self._blob_lock:
                value = self._blobs.pop(payload.id, None) or payload
        # Paths and bytes only: outlyne.sketch.load counts the layers and checks every size first.
        return {
            "background": _file(value.background),
            "layers": [_file(layer) for layer in value.layers or [] if layer is not None],
            "composite": _file(value.composite),
        }

    @server
    def accept_blobs(self, data: AcceptBlobs) -> None:
        """The editor sends its layers here before the event that uses them (Gradio's protocol). Refusals
        are HTTP errors (a 4xx, not a 500 with a server-side traceback): only a hand-made request gets one."""
        fields = data.data
        kind, blob_id = fields.get("type"), str(fields.get("id") or "")[:64]
        if kind not in _PARTS or not blob_id or not data.files:
            raise HTTPException(400, "The drawing could not be received.")
        blob = data.files[0][1]
        if len(blob) > self.max_bytes:
            raise HTTPException(413, "The drawing is too large.")
        index = None
        if kind == "layer":
            raw_index = str(fields.get("index") or "0")
            if not raw_index.isdigit() or int(raw_index) >= MAX_EDITOR_LAYERS:
                raise HTTPException(400, f"A drawing may have at most {MAX_EDITOR_LAYERS} layers.")
            index = int(raw_index)
        with self._blob_lock:
            current = self._blobs.pop(blob_id, None) or EditorDataBlobs(
                background=None, layers=[], composite=None
            )
            if kind == "layer":
                current.layers.extend([None] * (index + 1 - len(current.layers)))
                current.layers[index] = blob
            elif kind == "background":
                current.background = blob
            else:
                current.composite = blob
            self._blobs[blob_id] = current
            while self._stored_bytes() > BLOB_STORE_BYTES and len(self._blobs) > 1:
                self._blobs.popitem(last=False)  # the oldest unclaimed drawing is forgotten

    def _stored_bytes(self) -> int:
        return sum(
            len(part or b"")
            for blobs in self._blobs.values()
            for part in (blobs.background, blobs.composite, *blobs.layers)
        )
