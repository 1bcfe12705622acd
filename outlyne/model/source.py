"""Where the SigLIP weights named by OUTLYNE_MODEL come from, and what identifies them.

Resolving is cheap and offline (it runs on every start, before the cached IR is loaded): a hub id is
identified by the commit its local Hugging Face cache points at, a folder by a fingerprint of its files.
Fetching (a download for hub ids) only happens when an export is needed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from outlyne.errors import ModelUnavailable, first_line

# Files up to this size (configs, tokenizer, preprocessor) are hashed by content; larger ones (weights)
# by size and modification time: hashing ~800 MB of weights would cost about a second on every start,
# a third of the cold-start budget, while any real change of a weights file changes its mtime.
_CONTENT_HASH_LIMIT = 1 << 20
_HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt"]


@dataclass(frozen=True)
class ModelSource:
    name: str  # OUTLYNE_MODEL as given
    kind: str  # "folder" | "hub"
    folder: Path | None  # the checkpoint folder (for hub ids: the local snapshot, when there is one)
    revision: str | None  # folder fingerprint, or hub commit hash; None when it cannot be known offline

    @property
    def identity(self) -> str | None:
        """Stable name of exactly these weights, or None when they are not on this machine."""
        if self.revision is None:
            return None
        return f"{self.kind}:{self.name}@{self.revision}"


def looks_like_path(name: str) -> bool:
    """Hub ids are "owner/name"; anything absolute, relative-dotted, home-based or deeper is a path."""
    return (
        name.startswith(("/", "./", "../", "~", "\\"))
        or name in (".", "..")
        or name.count("/") > 1
        or (len(name) > 1 and name[1] == ":")
    )


def resolve(name: str) -> ModelSource:
    """Identify OUTLYNE_MODEL without network access and without loading anything heavy."""
    path = Path(name).expanduser()
    if path.is_dir():
        folder = path.resolve()
        return ModelSource(str(folder), "folder", folder, fingerprint_folder(folder))
    if looks_like_path(name) or path.exists():
        return ModelSource(str(path.absolute()), "folder", None, None)
    snapshot = _cached_snapshot(name)
    return ModelSource(name, "hub", snapshot, snapshot.name if snapshot else None)


def fingerprint_folder(folder: Path) -> str:
    """sha256 over every file's relative name and size, plus content (small files) or mtime (large)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue  # .git, .cache/huggingface and editor files are not the checkpoint
        stat = path.stat()
        digest.update(f"{relative.as_posix()}\0{stat.st_size}\0".encode())
        if stat.st_size <= _CONTENT_HASH_LIMIT:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        else:
            digest.update(str(stat.st_mtime_ns).encode())
    return digest.hexdigest()[:16]


def _hub_cache_root() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _cached_snapshot(repo_id: str) -> Path | None:
    """The snapshot folder refs/main points at in the local HF cache, if the model was downloaded."""
    repo_folder = _hub_cache_root() / f"models--{repo_id.replace('/', '--')}"
    try:
        commit = (repo_folder / "refs" / "main").read_text().strip()
    except OSError:
        return None
    snapshot = repo_folder / "snapshots" / commit
    return snapshot if (snapshot / "config.json").is_file() else None


def unavailable(source: ModelSource, tried: str) -> ModelUnavailable:
    """One message: which OUTLYNE_MODEL, what was tried, how to fix it."""
    return ModelUnavailable(
        f"OUTLYNE_MODEL={source.name!r}: {tried} "
        "Fix: point OUTLYNE_MODEL to a local folder holding a SigLIP checkpoint (config.json, "
        "model.safetensors, tokenizer and preprocessor config), or run `python -m outlyne export` once "
        "with network access so the weights are downloaded and exported to the cache."
    )


def fetch(source: ModelSource) -> ModelSource:
    """A source whose folder holds the weights on disk, downloading a hub model if needed."""
    if source.kind == "folder":
        if source.folder is None:
            raise unavailable(source, "no such folder.")
        if not (source.folder / "config.json").is_file():
            raise unavailable(
                source, f"the folder {source.folder} holds no config.json, so it is not a checkpoint."
            )
        return source
    if source.folder is not None:
        return source
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(source.name, allow_patterns=_HUB_FILES))
    except Exception as error:  # offline, unknown id, gated repo, network down: all mean "not obtainable"
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip() not in ("", "0")
        detail = first_line(error)
        how = "downloading is disabled (HF_HUB_OFFLINE=1)" if offline else f"{type(error).__name__}: {detail}"
        raise unavailable(
            source,
            f"it is not a local folder, not in the Hugging Face cache ({_hub_cache_root()}), and the hub "
            f"download failed: {how}.",
        ) from None
    return ModelSource(source.name, "hub", folder, folder.name)
