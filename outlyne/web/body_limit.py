"""An ASGI middleware that refuses request bodies past a size, before anything parses them.

Gradio's max_file_size limits each uploaded file, but one multipart request may carry up to 1000 files
(and a component server function may read them all into memory). Every request here is capped in
total: by its Content-Length when it declares one, by counting otherwise.
"""

from __future__ import annotations

from typing import Any

_TOO_LARGE = b"The request is too large."


class BodyLimit:
    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _refuse(send)
            return
        seen = 0
        refused = started = False

        async def watched_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        async def counted_receive() -> dict:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counted_receive, watched_send)
        except _BodyTooLarge:
            if refused and not started:
                await _refuse(send)


class _BodyTooLarge(Exception):
    pass


async def _refuse(send: Any) -> None:
    await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": _TOO_LARGE})
