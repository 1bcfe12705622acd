"""Outlyne's web page and API: `python app.py` serves the page (outlyne.web) on 0.0.0.0:7860
(GRADIO_SERVER_PORT honoured) and builds the pipeline from OUTLYNE_* variables once, behind it."""

from __future__ import annotations

from outlyne.config import Config
from outlyne.pipeline import get_pipeline
from outlyne.web.handlers import serving_concurrency
from outlyne.web.page import build_demo, launch_options
from outlyne.web.share import Sharing
from outlyne.web.startup import Preparation


def main() -> None:
    # The page answers at once; the pipeline (built once, shared by every session) is prepared in the
    # background, its progress shown on the page and on stderr. With a warm cache (the Docker image)
    # that takes about a second.
    config = Config.from_env()
    preparation = Preparation.start(config, lambda progress: get_pipeline(config, progress=progress))
    demo = build_demo(preparation, [Sharing(preparation)])
    demo.queue(default_concurrency_limit=serving_concurrency(config)).launch(**launch_options(config))


if __name__ == "__main__":
    main()
