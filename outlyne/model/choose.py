"""The one place that decides which encoder a process runs, once, at start-up.

OUTLYNE_ENCODER unset: the in-process OpenVINO encoder (the default). kserve-v2://HOST:PORT[/NAME]: a
client of an encoder service (remote.py). Both satisfy the Embedder protocol, so the pipeline, the concept
bank, search and re-ranking never know which one they were given.
"""

from __future__ import annotations

from outlyne.config import Config
from outlyne.model.embedder import Embedder
from outlyne.progress import Progress


def choose_encoder(config: Config, *, progress: Progress | None = None) -> Embedder:
    if config.encoder:
        from outlyne.model.remote import RemoteEncoder  # no OpenVINO in a front-end that embeds remotely

        if progress:
            progress(f"using the encoder service OUTLYNE_ENCODER={config.encoder}")
        return RemoteEncoder(config.encoder)
    from outlyne.model.encoder import load_encoder

    return load_encoder(config, progress=progress)
