"""outlyne.web.startup: the page answers while the pipeline is prepared; progress and failures show."""

from __future__ import annotations

import threading

import pytest

from outlyne.config import Config
from outlyne.errors import ModelUnavailable, OutlyneError
from outlyne.web.startup import Preparation


def test_progress_shows_until_the_pipeline_is_ready_and_requests_wait_for_it() -> None:
    reported, release = threading.Event(), threading.Event()
    sentinel = object()

    def build(progress):
        progress("Embedding concepts 1-64 of 438")
        reported.set()
        release.wait()
        return sentinel

    preparation = Preparation.start(Config(), build)
    assert reported.wait(30)
    assert not preparation.ready
    assert "Embedding concepts 1-64 of 438" in preparation.status()
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(preparation.get()))
    waiter.start()
    release.set()
    waiter.join(30)
    assert got == [sentinel]
    assert preparation.ready and preparation.status() == ""


def test_a_failed_preparation_is_one_plain_sentence_on_every_request() -> None:
    def build(progress):
        raise ModelUnavailable("The model 'nowhere/none' could not be downloaded: no network.")

    preparation = Preparation.start(Config(), build)
    with pytest.raises(OutlyneError, match="could not be downloaded"):
        preparation.get()
    assert preparation.status().startswith("The model 'nowhere/none'")
