"""User-facing errors.

Every error a person can cause or meet (bad input, missing weights, a search engine that is down) is an
`OutlyneError` whose message is plain words meant to be shown as is: the CLI prints it on one line and
exits non-zero, the UI shows it with `gr.Error` / `gr.Warning`. Anything else is a bug.
"""

from __future__ import annotations


class OutlyneError(Exception):
    """Base class: the message is for people, not for developers."""


class ModelUnavailable(OutlyneError):
    """The SigLIP weights named by OUTLYNE_MODEL could not be obtained or loaded."""


class BadImage(OutlyneError):
    """A file or value that is not a readable image (corrupt, wrong type, too large)."""


class EmptySketch(OutlyneError):
    """The canvas holds no ink: there is nothing to recognize."""

    def __init__(self, message: str = "Draw something first: the canvas is empty.") -> None:
        super().__init__(message)


class ConceptFileError(OutlyneError):
    """The concept bank file is missing or malformed; the message names the entry and the problem."""


class SearchUnavailable(OutlyneError):
    """The image search backend failed (timeout, rate limit, network); the message says why."""


class UnknownConcept(OutlyneError):
    """A concept asked about by name (to explain it) is not in the bank or the person's own concepts."""


class ConfigError(OutlyneError):
    """An OUTLYNE_* environment variable has a value that cannot be used."""


class EncoderUnavailable(OutlyneError):
    """The remote encoder service (OUTLYNE_ENCODER) is unreachable, too slow, or serves other inputs."""


def first_line(error: BaseException, limit: int = 200) -> str:
    """A library's error message cut to its first line: messages to people stay one sentence long."""
    return (str(error).strip().splitlines() or [""])[0][:limit]


def shorten(text: str, limit: int = 80) -> str:
    """Text someone else chose (a label, a file name), cut to `limit` characters for a message, so a
    10,000-character value never comes back whole."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class ShareUnavailable(OutlyneError):
    """A share link that cannot be opened (unknown, expired or damaged), or a run too large to share."""

    def __init__(
        self, message: str = "This shared drawing is not available: the link is wrong or has expired."
    ) -> None:
        super().__init__(message)
