"""Serving a gallery (OUTLYNE_SEARCH=local:FOLDER or milvus:...): downsized copies of indexed images only.

The gallery folder is never handed to Gradio's `allowed_paths` (that would serve every file in it: the
index, the embeddings, whatever else lies there). Search results name an indexed image by an app URL,
/outlyne/gallery/<id> (the id is the start of its content hash); this route answers it with a fresh
JPEG re-encoded from the indexed file through the image intake, at most SERVED_SIDE px. Anything else,
any id not in the current index, is a 404. The page's gallery shows the same copies, smaller.
"""

from __future__ import annotations

import io

from PIL import Image
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from outlyne.search.galleries.served import SERVED_PREFIX, open_served_image

SERVED_SIDE = 1024  # what an API caller gets
DISPLAY_SIDE = 384  # what the page's gallery shows


def gallery_route() -> Route:
    return Route(SERVED_PREFIX + "{item_id}", _serve, methods=["GET"])


def _serve(request: Request) -> Response:
    # A plain function: Starlette runs it in a worker thread, so decoding never blocks the event loop.
    item_id = request.path_params["item_id"]
    image = open_served_image(SERVED_PREFIX + item_id, SERVED_SIDE) if item_id.isalnum() else None
    if image is None:
        return Response("Not found.", status_code=404, media_type="text/plain")
    body = io.BytesIO()
    image.save(body, "JPEG", quality=88)
    return Response(
        body.getvalue(), media_type="image/jpeg", headers={"Cache-Control": "public, max-age=3600"}
    )


def display_value(thumbnail: str) -> str | Image.Image | None:
    """What the page's gallery shows for a result's thumbnail: a gallery result's downsized copy (Gradio
    caches and serves it), any other URL as it is."""
    if not thumbnail.startswith(SERVED_PREFIX):
        return thumbnail
    return open_served_image(thumbnail, DISPLAY_SIDE)
