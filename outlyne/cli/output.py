"""Command-line output: `--json` means stdout carries the JSON and nothing else, whatever a library prints.

While a `--json` command runs, Python's sys.stdout points at stderr and so does file descriptor 1 (when
it is the process's real stdout), so progress bars or messages from torch, transformers, NNCF or
OpenVINO, written from Python or C, land on stderr. `print_json` writes to the stdout saved beforehand.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

_json_stream: TextIO | None = None


@contextlib.contextmanager
def stdout_for_json_only(enabled: bool) -> Iterator[None]:
    global _json_stream
    if not enabled:
        yield
        return
    original = sys.stdout
    saved_fd = None
    if original is sys.__stdout__ and original is not None:
        original.flush()
        saved_fd = os.dup(1)
        os.dup2(2, 1)  # C libraries writing to fd 1 now write to stderr
        _json_stream = open(os.dup(saved_fd), "w", encoding="utf-8")  # noqa: SIM115 - closed below
    else:  # stdout already replaced (a test's capture): the JSON goes there
        _json_stream = original
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout = original
        if saved_fd is not None:
            _json_stream.close()
            sys.stderr.flush()
            os.dup2(saved_fd, 1)
            os.close(saved_fd)
        _json_stream = None


def print_json(payload: Any, *, indent: int | None = 2) -> None:
    stream = _json_stream or sys.stdout
    stream.write(json.dumps(payload, indent=indent) + "\n")
    stream.flush()


def positive_int(text: str) -> int:
    """argparse type: `--top 0` is refused with a usage message, not a traceback later."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        import argparse

        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text[:20]!r}")
    return value
