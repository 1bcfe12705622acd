"""Raw HTTP to a running Gradio app, as an attacker would talk to it: upload, /gradio_api/queue/join for
any event (also those not on the API page), read the event stream until the event completes."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx


class QueueClient:
    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        self.http = httpx.Client(timeout=120)
        self.config = self.http.get(f"{self.base}/config").json()

    def component_id(self, elem_id: str) -> int:
        for component in self.config["components"]:
            if component.get("props", {}).get("elem_id") == elem_id:
                return component["id"]
        raise LookupError(elem_id)

    def event_index(self, component: int, event: str) -> int:
        """The fn_index of the listener bound to `component`'s `event` (the browser's own events too)."""
        for dependency in self.config["dependencies"]:
            targets = [list(target) for target in dependency["targets"]]
            if [component, event] in targets and dependency.get("backend_fn", True):
                return dependency["id"]
        raise LookupError(f"{component}.{event}")

    def score_drawing(
        self,
        value: Any,
        *,
        extra: str = "",
        source: str = "sketch",
        upload: Any = None,
        session: str | None = None,
    ) -> list[dict[str, Any]]:
        """Send `value` as the drawing paper's own `input` event (what the page's canvas sends after each
        stroke: a PNG data URL), with the page's inputs in the order of outlyne.web.page.Page.drawing_inputs:
        source, sketch, upload, top_k, extra concepts, safe search, max results, re-rank, version."""
        event = self.event_index(self.component_id("outlyne-sketch"), "input")
        # `source` is a gr.State: the server reads it from the session, whatever the request says.
        return self.call(event, [source, value, upload, 5, extra, "moderate", 30, True, 1], session=session)

    def choose_tab(self, label: str, session: str) -> None:
        """Select an input tab in `session`, as a click on it does (the tab's select event runs unqueued)."""
        tab = next(
            c["id"]
            for c in self.config["components"]
            if c.get("type") in ("tab", "tabitem") and c.get("props", {}).get("label") == label
        )
        # Its one input is the session's source tab, a gr.State: the server reads it from the session.
        body = {"data": [None], "fn_index": self.event_index(tab, "select"), "session_hash": session}
        self.http.post(f"{self.base}/gradio_api/run/predict", json=body).raise_for_status()

    @staticmethod
    def data_url(png: bytes) -> str:
        return "data:image/png;base64," + base64.b64encode(png).decode("ascii")

    def upload(self, name: str, data: bytes) -> dict[str, Any]:
        """A FileData dict for a file the server now holds."""
        response = self.http.post(f"{self.base}/gradio_api/upload", files={"files": (name, data)})
        response.raise_for_status()
        (path,) = response.json()
        return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}

    def call(self, fn_index: int, data: list[Any], session: str | None = None) -> list[dict[str, Any]]:
        """Join the queue and return every message of the event, the last being process_completed."""
        session = session or uuid.uuid4().hex
        joined = self.http.post(
            f"{self.base}/gradio_api/queue/join",
            json={"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None},
        )
        joined.raise_for_status()
        messages = []
        with self.http.stream(
            "GET", f"{self.base}/gradio_api/queue/data", params={"session_hash": session}
        ) as s:
            for line in s.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                messages.append(message)
                if message.get("msg") in ("process_completed", "close_stream", "unexpected_error"):
                    break
        return messages
