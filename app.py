"""Outlyne's web page and API: `python app.py` serves the page (outlyne.web) on 0.0.0.0:7860
(GRADIO_SERVER_PORT honoured) and builds the pipeline from OUTLYNE_* variables once, behind it."""

from __future__ import annotations

import os
import signal
import sys

from outlyne.config import Config
from outlyne.pipeline import get_pipeline
from outlyne.web.handlers import serving_concurrency
from outlyne.web.page import build_demo, launch_options
from outlyne.web.share import Sharing
from outlyne.web.startup import Preparation

SHUTDOWN_GRACE_S = 0.5  # open connections get this long; `docker stop` then returns well within 2 s


def main() -> None:
    # The page answers at once; the pipeline (built once, shared by every session) is prepared in the
    # background, its progress shown on the page and on stderr. With a warm cache (the Docker image)
    # that takes about a second.
    config = Config.from_env()
    preparation = Preparation.start(config, lambda progress: get_pipeline(config, progress=progress))
    demo = build_demo(preparation, [Sharing(preparation)])
    # `docker stop` sends SIGTERM, which PID 1 ignores unless it handles it: treat it as Ctrl-C, which
    # Gradio answers by closing its server. That waits for every open connection, and each visitor's page
    # holds an event stream open, so bound the wait: work finishing within it is delivered, the rest refused.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    demo.queue(default_concurrency_limit=serving_concurrency(config))
    try:
        demo.launch(**launch_options(config), prevent_thread_lock=True)
        demo.server.config.timeout_graceful_shutdown = SHUTDOWN_GRACE_S
        demo.block_thread()  # returns once SIGTERM or Ctrl-C has closed the server
    except KeyboardInterrupt:  # it came while Gradio was still starting up
        demo.close()
    # The server is closed. Tearing down the interpreter (garbage-collecting Gradio, the compiled models)
    # would take seconds more and achieves nothing for a process that is ending: leave now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
