"""Outlyne's web page and API: `python app.py` builds the pipeline from OUTLYNE_* variables once and serves
the page (outlyne.web) on 0.0.0.0:7860 (GRADIO_SERVER_PORT honoured)."""

from __future__ import annotations

from outlyne.pipeline import get_pipeline
from outlyne.progress import progress_to_stderr
from outlyne.web.handlers import serving_concurrency
from outlyne.web.page import build_demo, launch_options


def main() -> None:
    # Built once, before the first request, and shared by every session. Export or concept-embedding
    # progress (a cold cache) goes to stderr, so a slow first start says what it is doing.
    pipeline = get_pipeline(progress=progress_to_stderr)
    demo = build_demo(pipeline)
    demo.queue(default_concurrency_limit=serving_concurrency(pipeline)).launch(**launch_options(pipeline))


if __name__ == "__main__":
    main()
