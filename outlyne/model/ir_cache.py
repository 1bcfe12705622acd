"""The on-disk cache of exported IR: layout, manifest, validation and atomic publication.

One folder per (model identity, precision, exporter version) under OUTLYNE_CACHE_DIR/ir. An export is
written into a private staging folder and renamed into place in one step, so a reader never sees half a
cache and two processes exporting at once both end up using one complete folder. Every load checks the
manifest; anything missing, truncated or altered is reported as CacheInvalid and rebuilt by the caller.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import uuid
from pathlib import Path

from outlyne.files import atomic_write_text, sha256_file

# Bump when the exported graphs or the manifest change meaning: every cache is then rebuilt.
EXPORT_FORMAT = 2
MANIFEST = "manifest.json"
# Every file, weights included, is checked against its SHA-256: a same-size bit flip in a .bin would
# otherwise load silently and give wrong embeddings. Hashing weights costs about 0.5 s per 100 MB here, so
# a file is re-hashed only when it changed since its last check: VERIFIED records (size, mtime, ctime,
# inode) of each file as it was when its checksum last matched, and any write to a file moves its ctime
# (which no unprivileged process can set back). A cache on a read-only disk is simply hashed every time.
VERIFIED = ".verified.json"
LOCK = ".export.lock"  # in OUTLYNE_CACHE_DIR: exports take turns (filelock)


class CacheInvalid(Exception):
    """A cache folder that cannot be used as is (the message says why); it gets rebuilt."""


def exporter_version() -> str:
    """Versions that change the exported graphs; read from package metadata, without importing them."""
    parts = [f"outlyne-export-{EXPORT_FORMAT}"]
    for package in ("openvino", "transformers"):
        try:
            parts.append(f"{package}-{importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{package}-none")
    return "+".join(parts)


def cache_key(model_identity: str, precision: str) -> str:
    return f"{model_identity}|{precision}|{exporter_version()}"


def entry_folder(cache_dir: Path, model_name: str, precision: str, key: str) -> Path:
    """Readable prefix for people browsing the cache, hash suffix for uniqueness."""
    slug = re.sub(r"[^A-Za-z0-9.-]+", "_", model_name).strip("_")[-60:]
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return Path(cache_dir) / "ir" / f"{slug}-{precision}-{digest}"


def write_manifest(folder: Path, info: dict) -> dict:
    """Record every file's size and checksum next to `info`; written last, so its presence means done."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in (MANIFEST, VERIFIED)):
        name = path.relative_to(folder).as_posix()
        files[name] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    manifest = {**info, "format": EXPORT_FORMAT, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def read_manifest(folder: Path, key: str | None = None, *, full: bool = False) -> dict:
    """The manifest of a usable cache folder, or CacheInvalid. Files unchanged since their last
    successful check keep that check (see VERIFIED); `full` hashes every file regardless."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise CacheInvalid(f"{folder.name}: no manifest") from None
    except (OSError, ValueError) as error:
        raise CacheInvalid(f"{folder.name}: unreadable manifest ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
        raise CacheInvalid(f"{folder.name}: manifest of another format")
    if key is not None and manifest.get("key") != key:
        raise CacheInvalid(f"{folder.name}: manifest is for {manifest.get('key')!r}")
    verified = {} if full else _read_verified(folder)
    checked = {}
    for name, expected in manifest.get("files", {}).items():
        path = folder / name
        try:
            stat = path.stat()
        except OSError:
            raise CacheInvalid(f"{folder.name}: {name} is missing") from None
        if stat.st_size != expected["size"]:
            raise CacheInvalid(f"{folder.name}: {name} has {stat.st_size} bytes, expected {expected['size']}")
        stamp = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, expected["sha256"]]
        if verified.get(name) != stamp and sha256_file(path) != expected["sha256"]:
            raise CacheInvalid(f"{folder.name}: {name} does not match its checksum")
        checked[name] = stamp
    if checked != verified:
        # A read-only cache (say, baked into an image) is simply hashed again next time.
        with contextlib.suppress(OSError):
            atomic_write_text(folder / VERIFIED, json.dumps(checked))
    return manifest


def _read_verified(folder: Path) -> dict:
    try:
        verified = json.loads((folder / VERIFIED).read_text())
    except (OSError, ValueError):
        return {}
    return verified if isinstance(verified, dict) else {}


def find_latest(cache_dir: Path, model_name: str, precision: str) -> Path | None:
    """The newest valid export of `model_name` at `precision` by this exporter version, whatever the
    revision: used when the weights are not on this machine (say, a container that only ships the IR)."""
    version = exporter_version()
    candidates = []
    for manifest_path in (Path(cache_dir) / "ir").glob(f"*-{precision}-*/{MANIFEST}"):
        if manifest_path.parent.name.startswith("."):
            continue  # staging or trash: not published
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            continue
        if (
            manifest.get("model") == model_name
            and manifest.get("precision") == precision
            and manifest.get("exporter_version") == version
        ):
            candidates.append((manifest_path.stat().st_mtime, manifest_path.parent))
    return max(candidates)[1] if candidates else None


def staging_folder(cache_dir: Path) -> Path:
    """A private, empty folder on the same file system as the cache (so the final rename is atomic)."""
    folder = Path(cache_dir) / "ir" / f".staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    return folder


def remove_leftovers(cache_dir: Path) -> list[str]:
    """Delete staging and trash folders under OUTLYNE_CACHE_DIR/ir; only safe while holding LOCK (then
    no other export is running, so they were left by a run that was killed). Returns their names."""
    removed = []
    for leftover in sorted((Path(cache_dir) / "ir").glob(".staging-*")) + sorted(
        (Path(cache_dir) / "ir").glob(".trash-*")
    ):
        shutil.rmtree(leftover, ignore_errors=True)
        removed.append(leftover.name)
    return removed


def discard(folder: Path) -> None:
    """Remove a cache folder: first renamed away (atomic), so nobody sees it half deleted."""
    trash = folder.parent / f".trash-{folder.name}-{uuid.uuid4().hex[:8]}"
    try:
        os.replace(folder, trash)
    except FileNotFoundError:
        return  # someone else already removed it
    shutil.rmtree(trash, ignore_errors=True)


def publish(staging: Path, final: Path) -> bool:
    """Rename a finished export into place; False (staging left as is) when the name is already taken."""
    try:
        os.replace(staging, final)
        return True
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        return False
