"""A first start people can see: the page answers at once while the pipeline is prepared behind it.

With a cold cache, preparing means exporting the model and embedding every concept of the bank (minutes
on two cores); the Docker image bakes both in, so there a start is a warm one. `Preparation` builds the
pipeline in a background thread, keeps the latest progress line for the page's banner (and still prints
every line to stderr), and hands the pipeline to the handlers once it exists: a request made meanwhile
waits for it in the queue instead of failing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from outlyne.config import Config
from outlyne.errors import OutlyneError
from outlyne.pipeline import Pipeline
from outlyne.progress import Progress, progress_to_stderr


class Preparation:
    def __init__(self, config: Config, build: Callable[[Progress], Pipeline]) -> None:
        self.config = config
        self._build = build
        self._done = threading.Event()
        self._pipeline: Pipeline | None = None
        self._error: str | None = None
        self.latest = "Loading the model…"

    @classmethod
    def start(cls, config: Config, build: Callable[[Progress], Pipeline]) -> Preparation:
        preparation = cls(config, build)
        threading.Thread(target=preparation._run, name="outlyne-preparation", daemon=True).start()
        return preparation

    @classmethod
    def ready_with(cls, pipeline: Pipeline) -> Preparation:
        """An already built pipeline (tests, scripts): nothing to wait for."""
        preparation = cls(pipeline.config, lambda _progress: pipeline)
        preparation._pipeline = pipeline
        preparation._done.set()
        return preparation

    def _run(self) -> None:
        try:
            self._pipeline = self._build(self._report)
        except OutlyneError as error:
            self._error = str(error)
            progress_to_stderr(f"error: {error}")
        except Exception as error:  # a bug: say so on the page in one line, the traceback goes to stderr
            self._error = "The model could not be prepared; the server log says why."
            progress_to_stderr(f"error: preparing the pipeline failed: {error!r}")
            raise
        finally:
            self._done.set()

    def _report(self, message: str) -> None:
        self.latest = message
        progress_to_stderr(message)

    @property
    def ready(self) -> bool:
        return self._done.is_set()

    def status(self) -> str:
        """One line for the page while preparing ('' once ready)."""
        if not self._done.is_set():
            return f"Preparing the model (first start, done once): {self.latest}"
        return self._error or ""

    def get(self) -> Pipeline:
        """The pipeline, waiting for it if it is still being prepared."""
        self._done.wait()
        if self._pipeline is None:
            raise OutlyneError(self._error or "The model could not be prepared.")
        return self._pipeline
