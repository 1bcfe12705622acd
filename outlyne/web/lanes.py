"""Queue lanes: which events wait for which slots (Gradio's concurrency_id / concurrency_limit).

Two lanes, so that work waiting on the network never holds a slot that model compute needs: a hanging
search engine or a slow thumbnail host keeps its own lane busy, while interrogation and live scoring go
on as fast as when the server is idle.
"""

from __future__ import annotations

from typing import Any

# Interrogation and live scoring: the encoder is compiled with PERFORMANCE_HINT=LATENCY (one inference
# already uses every core it was given), so one at a time; others wait in Gradio's queue, in view.
MODEL_LANE = "model"
# Web or gallery search, thumbnail downloads and re-ranking: mostly waiting on other servers.
NETWORK_LANE = "network"

# Share links (web/share.py): storing a run and opening a link read and write small files only, so they
# wait neither behind the encoder nor behind a hanging search engine.
SHARE_LANE = "share"

LANE_LIMITS = {MODEL_LANE: 1, NETWORK_LANE: 2, SHARE_LANE: 2}


def lane(name: str) -> dict[str, Any]:
    """Keyword arguments for an event listener that runs in lane `name`."""
    return dict(concurrency_id=name, concurrency_limit=LANE_LIMITS[name])
