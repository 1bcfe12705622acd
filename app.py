"""Outlyne's web page and API: `python app.py` builds the pipeline from OUTLYNE_* variables once and serves
the page (outlyne.web) on 0.0.0.0:7860 (GRADIO_SERVER_PORT honoured)."""

from __future__ import annotations

import os
import signal
import sys

from outlyne.pipeline import get_pipeline
from outlyne.progress import progress_to_stderr
from outlyne.web.handlers import serving_concurrency
from outlyne.web.page import build_demo, launch_options

SHUTDOWN_GRACE_S = 0.5  # open connections get this long; `docker stop` then returns well within 2 s


def main() -> None:
    # Built once, before the first request, and shared by every session. Export or concept-embedding
    # progress (a cold cache) goes to stderr, so a slow first start says what it is doing.
    pipeline = get_pipeline(progress=progress_to_stderr)
    demo = build_demo(pipeline)
    # `docker stop` sends SIGTERM, which PID 1 ignores unless it handles it: treat it as Ctrl-C, which
    # Gradio answers by closing its server. That waits for every open connection, and each visitor's page
    # holds an event stream open, so bound the wait: work finishing within it is delivered, the rest refused.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    demo.queue(default_concurrency_limit=serving_concurrency(pipeline))
    try:
        demo.launch(**launch_options(pipeline), prevent_thread_lock=True)
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
