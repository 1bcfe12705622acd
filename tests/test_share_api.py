"""The `share` API endpoint: an image file in, a link out (gradio_client against `python app.py`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from outlyne_dev.app_server import AppServer

SHARE_LINK = re.compile(r"^http://127\.0\.0\.1:\d+/\?share=([A-Za-z0-9_-]{22})$")


def test_share_returns_a_link_to_the_stored_run(
    app: AppServer, app_client: Client, house_drawing: Path
) -> None:
    link = app_client.predict(handle_file(str(house_drawing)), api_name="/share")
    match = SHARE_LINK.match(link)
    assert match, link
    stored = Path(app.env["OUTLYNE_CACHE_DIR"]) / "shares" / f"{match.group(1)}.json"
    record = json.loads(stored.read_text())
    searched = app_client.predict(handle_file(str(house_drawing)), api_name="/search")
    # The same run as `search` gives for the same file...
    assert [c["label"] for c in record["concepts"]] == [c["label"] for c in searched["concepts"]]
    assert record["query"] == searched["query"]
    assert len(record["results"]) == len(searched["results"]) > 0
    # ...with the local gallery's images by their app URLs, as `search` gives them, never server paths.
    text = stored.read_text()
    assert str(app.gallery) not in text and app.env["OUTLYNE_CACHE_DIR"] not in text
    assert [r["thumbnail"] for r in record["results"]] == [r["thumbnail"] for r in searched["results"]]
    assert all(r["thumbnail"].startswith("/outlyne/gallery/") for r in record["results"])


def test_share_without_an_image_is_one_plain_sentence(app_client: Client) -> None:
    with pytest.raises(AppError, match="Draw something first"):
        app_client.predict(None, api_name="/share")
