"""Child processes the tooling starts (the app, the encoder service, a Milvus server): stopping them, and
the end of their logs for error messages."""

from __future__ import annotations

import subprocess
from pathlib import Path


def stop_process(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM and up to `timeout` seconds for a clean exit, then SIGKILL. A process that has already
    exited is left alone."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


def log_tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a log file, or "(no log)" when it cannot be read."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
