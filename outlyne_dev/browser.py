"""Debian's chromium under Playwright, as the browser tests (and the measuring scripts) drive the page."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]

# True when the score view shows the answer to the page's latest change (web/live.py).
SETTLED_JS = """() => {
  const view = document.getElementById('outlyne-concepts');
  const shown = view && view.querySelector('[data-version]');
  return Boolean(window.outlyne && shown && Number(shown.dataset.version) === window.outlyne.want
    && !view.classList.contains('outlyne-pending'));
}"""

# True when a pointer on the paper reaches the paper: Gradio veils the whole page while the page's load
# event runs (it may restore a shared drawing), and strokes drawn through the veil are lost.
PAPER_DRAWABLE_JS = """() => {
  const canvas = document.querySelector('#outlyne-sketch canvas[data-ready=true]');
  if (!canvas) return false;
  const box = canvas.getBoundingClientRect();
  return document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2) === canvas;
}"""


@contextlib.contextmanager
def launch_chromium() -> Iterator[Browser]:
    """CHROMIUM with CHROMIUM_ARGS, closed when the block ends."""
    from playwright.sync_api import sync_playwright  # imported here: only browser runs need Playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
