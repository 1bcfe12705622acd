"""The running app against hostile and unlucky input (issue 11), through gradio_client and raw HTTP to the
queue (the drawing paper's own event included): every refusal is one plain sentence, and afterwards the app
still answers a normal request and the gallery index is still valid."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from outlyne.web.canvas import MAX_SKETCH_CHARS
from outlyne_dev.app_server import AppServer
from outlyne_dev.hostile import EPS_BYTES, drawing_png, png_declaring, truncated_png
from outlyne_dev.queue_client import QueueClient
from tests.support.outlyne_cli import run_outlyne

BOMB = png_declaring(13000, 13000)


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
def test_api_refuses_bad_images_in_one_sentence(app_client: Client, files, name: str, message: str) -> None:
    with pytest.raises(AppError) as caught:
        app_client.predict(handle_file(str(files[name])), api_name="/interrogate")
    text = str(caught.value)
    assert message in text
    assert "/tmp" not in text and "Traceback" not in text


def _warnings(messages: list[dict]) -> list[str]:
    return [m.get("log", "") for m in messages if m.get("msg") == "log"]


def _completed(messages: list[dict]) -> dict:
    assert messages and messages[-1]["msg"] == "process_completed", messages
    return messages[-1]


def _shown(messages: list[dict]) -> str:
    """Everything the completed event put on the page (the score view carries a refusal's sentence)."""
    return json.dumps(_completed(messages).get("output", {}).get("data"))


def test_the_papers_own_event_with_13000_squared_drawings_four_at_once(raw: QueueClient) -> None:
    bomb = raw.data_url(BOMB)  # 164 KB that declare 676 MB of RGBA
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: raw.score_drawing(bomb), range(4)))
    for messages in answers:
        assert "The drawing is too large (13000x13000 pixels)" in _shown(messages)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("data:image/png;base64," + "A" * MAX_SKETCH_CHARS, "The drawing is too large to process."),
        ("data:text/html;base64,PGh0bWw+", "The drawing did not arrive as a PNG image."),
        ("data:image/png;base64,not base64!", "The drawing did not arrive as a PNG image."),
        (["not", "a", "drawing"], "The drawing is too large to process."),
    ],
)
def test_the_papers_event_bounds_what_any_client_sends(raw: QueueClient, value, message: str) -> None:
    shown = _shown(raw.score_drawing(value))
    assert message in shown and "Traceback" not in shown


def test_a_non_image_upload_in_the_page_is_one_sentence(raw: QueueClient) -> None:
    text = raw.upload("notes.png", b"just text\n" * 50)
    session = uuid.uuid4().hex
    raw.choose_tab("Upload", session)
    shown = _shown(raw.score_drawing(None, upload={**text, "url": None}, session=session))
    assert "is not a PNG, JPEG, WebP, GIF or BMP image." in shown
    assert "/tmp" not in shown and "gradio" not in shown.lower()


def test_a_10000_character_custom_label_is_not_echoed_whole(raw: QueueClient) -> None:
    messages = raw.score_drawing(raw.data_url(drawing_png()), extra="y" * 10_000)
    _completed(messages)
    assert all("y" * 100 not in json.dumps(m) for m in messages)


def test_request_bodies_past_the_limit_are_refused(app: AppServer) -> None:
    too_big = b"\0" * 22_000_000
    response = httpx.post(f"{app.url}gradio_api/upload", files={"files": ("big.png", too_big)}, timeout=120)
    assert response.status_code == 413


def test_the_gallery_serves_indexed_images_only(app: AppServer, app_client: Client, files) -> None:
    result = app_client.predict(handle_file(str(files["drawing.png"])), max_results=3, api_name="/search")
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


def test_after_all_that_the_app_answers_and_the_index_is_valid(
    app: AppServer, app_client: Client, files
) -> None:
    result = app_client.predict(handle_file(str(files["drawing.png"])), api_name="/interrogate")
    assert len(result["concepts"]) >= 1
    done = run_outlyne(["index", str(app.gallery), "--json"], app.env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rebuilt"] is None and report["added"] == 0 and report["unchanged"] >= 1
