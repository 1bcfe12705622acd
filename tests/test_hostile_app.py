"""The running app against hostile and unlucky input (issue 11), through gradio_client and raw HTTP to the
queue (the editor's own events included): every refusal is one plain sentence, and afterwards the app
still answers a normal request and the gallery index is still valid."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from outlyne_dev.app_server import ROOT, AppServer, shared_app_server

from .support.hostile import EPS_BYTES, drawing_png, encoded, png_declaring, truncated_png
from .support.queue_client import QueueClient

BOMB = png_declaring(13000, 13000)


@pytest.fixture(scope="session")
def app(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> AppServer:
    return shared_app_server(tmp_path_factory.getbasetemp() / "app-server", tiny_checkpoint)


@pytest.fixture(scope="module")
def client(app: AppServer) -> Client:
    return Client(app.url, verbose=False)


@pytest.fixture(scope="module")
def raw(app: AppServer) -> QueueClient:
    return QueueClient(app.url)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile-app")
    contents = {
        "drawing.png": drawing_png(),
        "bomb.png": BOMB,
        "cut.png": truncated_png(),
        "eps.png": EPS_BYTES,
        "notes.png": b"just some text, not an image at all\n" * 10,
    }
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in contents}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bomb.png", "is too large (13000x13000 pixels); the limit is 50 megapixels."),
        ("cut.png", "is truncated or corrupt."),
        ("eps.png", "is not a PNG, JPEG, WebP, GIF or BMP image."),
        ("notes.png", "is not a PNG, JPEG, WebP, GIF or BMP image."),
    ],
)
def test_api_refuses_bad_images_in_one_sentence(client: Client, files, name: str, message: str) -> None:
    with pytest.raises(AppError) as caught:
        client.predict(handle_file(str(files[name])), api_name="/interrogate")
    text = str(caught.value)
    assert message in text
    assert "/tmp" not in text and "Traceback" not in text


def _warnings(messages: list[dict]) -> list[str]:
    return [m.get("log", "") for m in messages if m.get("msg") == "log"]


def _completed(messages: list[dict]) -> dict:
    assert messages and messages[-1]["msg"] == "process_completed", messages
    return messages[-1]


def test_the_sketchpads_own_event_with_four_13000_squared_layers(raw: QueueClient) -> None:
    sketch = raw.component_id("outlyne-sketch")
    change = raw.event_index(sketch, "change")
    layer = raw.upload("layer.png", BOMB)
    value = {"background": None, "layers": [layer] * 4, "composite": None, "id": None}
    messages = raw.call(change, [value, 5, ""])
    _completed(messages)
    assert any("Layer 1 of the drawing is too large (13000x13000 pixels)" in w for w in _warnings(messages))


def test_the_sketchpads_composite_and_too_many_layers(raw: QueueClient) -> None:
    sketch = raw.component_id("outlyne-sketch")
    change = raw.event_index(sketch, "change")
    bomb = raw.upload("composite.png", BOMB)
    messages = raw.call(change, [{"background": None, "layers": [], "composite": bomb, "id": None}, 5, ""])
    assert any("The drawing is too large" in w for w in _warnings(messages))
    small = raw.upload("small.png", encoded(Image.new("RGBA", (8, 8))))
    value = {"background": None, "layers": [small] * 9, "composite": None, "id": None}
    messages = raw.call(change, [value, 5, ""])
    assert any("The drawing has 9 layers; at most 4 are accepted." in w for w in _warnings(messages))


def test_the_editors_blob_endpoint_is_bounded(app: AppServer, raw: QueueClient) -> None:
    sketch = raw.component_id("outlyne-sketch")

    def send(index: str) -> httpx.Response:
        return raw.http.post(
            f"{raw.base}/gradio_api/component_server",
            data={
                "component_id": str(sketch),
                "fn_name": "accept_blobs",
                "session_hash": "attacker",
                "type": "layer",
                "index": index,
                "id": "drawing-1",
            },
            files={"file": ("blob.png", b"\x89PNG")},
        )

    refused = send("1000000000")  # before: a list of a billion entries
    assert refused.status_code == 400 and "at most 4 layers" in refused.text
    assert send("0").status_code == 200


def test_a_non_image_upload_in_the_page_is_one_sentence(raw: QueueClient) -> None:
    upload = next(
        c["id"]
        for c in raw.config["components"]
        if c.get("props", {}).get("label") == "Upload a drawing or a photo"
    )
    event = raw.event_index(upload, "upload")
    text = raw.upload("notes.png", b"just text\n" * 50)
    messages = raw.call(event, [{**text, "url": None}, 5, ""])
    _completed(messages)
    warnings = _warnings(messages)
    assert any("is not a PNG, JPEG, WebP, GIF or BMP image." in w for w in warnings), messages
    assert not any("/tmp" in w or "gradio" in w.lower() for w in warnings)


def test_a_10000_character_custom_label_is_not_echoed_whole(raw: QueueClient) -> None:
    sketch = raw.component_id("outlyne-sketch")
    change = raw.event_index(sketch, "change")
    drawing = raw.upload("drawing.png", drawing_png())
    value = {"background": None, "layers": [], "composite": drawing, "id": None}
    messages = raw.call(change, [value, 5, "y" * 10_000])
    _completed(messages)
    assert all("y" * 100 not in json.dumps(m) for m in messages)


def test_request_bodies_past_the_limit_are_refused(app: AppServer) -> None:
    too_big = b"\0" * 22_000_000
    response = httpx.post(f"{app.url}gradio_api/upload", files={"files": ("big.png", too_big)}, timeout=120)
    assert response.status_code == 413


def test_the_gallery_serves_indexed_images_only(app: AppServer, client: Client, files) -> None:
    result = client.predict(handle_file(str(files["drawing.png"])), max_results=3, api_name="/search")
    for item in result["results"]:
        assert str(app.gallery) not in json.dumps(item)
    base = app.url.rstrip("/")
    served = httpx.get(base + result["results"][0]["thumbnail"], timeout=30)
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    index_dir = app.gallery / ".outlyne"
    embeddings = next(index_dir.glob("embeddings-*.npy"))
    for leak in (
        f"/gradio_api/file={index_dir / 'manifest.json'}",
        f"/gradio_api/file={embeddings}",
        f"/gradio_api/file={next(app.gallery.glob('*.png'))}",
        "/outlyne/gallery/..%2F.outlyne%2Fmanifest.json",
        "/outlyne/gallery/0000000000000000",
    ):
        response = httpx.get(base + leak, timeout=30)
        assert response.status_code in (403, 404), leak
        assert b'"entries"' not in response.content


def test_after_all_that_the_app_answers_and_the_index_is_valid(app: AppServer, client: Client, files) -> None:
    result = client.predict(handle_file(str(files["drawing.png"])), api_name="/interrogate")
    assert len(result["concepts"]) >= 1
    done = subprocess.run(
        [sys.executable, "-m", "outlyne", "index", str(app.gallery), "--json"],
        env=app.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rebuilt"] is None and report["added"] == 0 and report["unchanged"] >= 1
