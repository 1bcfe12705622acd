"""What happened to each engine a search tried, and the one sentence a person reads about it.

Engines raise `EngineFailure(kind, detail)`; the chain records one `Attempt` per engine it considered (tried,
answered from the cache, or skipped) and, when nobody answered, `failure_message` turns the attempts into
one short sentence that names every engine tried. The kinds are few on purpose: a person can act on
"offline", "rate-limited", "timed out", "engine error" and "no results", not on an exception class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Failure kinds an engine raises.
OFFLINE = "offline"  # DNS failure, connection refused, no route: this server cannot reach the engine
RATE_LIMITED = "rate_limited"  # HTTP 429, or the engine refused this server (403, no token)
TIMED_OUT = "timed_out"
ENGINE_ERROR = "engine_error"  # HTTP 5xx, malformed answer, a misconfigured instance
NO_RESULTS = "no_results"
# What the chain records besides those.
ANSWERED = "answered"
COOLING_DOWN = "cooling_down"  # its breaker is open after repeated failures: skipped
OUT_OF_TIME = "out_of_time"  # the chain's deadline passed before its turn
NOT_APPLICABLE = "not_applicable"  # e.g. no safe-search filter while strict safe search is on

FAILURE_KINDS = (OFFLINE, RATE_LIMITED, TIMED_OUT, ENGINE_ERROR, NO_RESULTS)

# One or two words per status, for tables (`search-check`) and logs.
LABELS = {
    ANSWERED: "answered",
    OFFLINE: "offline",
    RATE_LIMITED: "rate-limited",
    TIMED_OUT: "timed out",
    ENGINE_ERROR: "engine error",
    NO_RESULTS: "no results",
    COOLING_DOWN: "cooling down",
    OUT_OF_TIME: "out of time",
    NOT_APPLICABLE: "skipped",
}

# Short phrases, used after an engine's name: "Openverse timed out".
PHRASES = {
    ANSWERED: "answered",
    OFFLINE: "could not be reached (offline or DNS failure)",
    RATE_LIMITED: "is rate-limiting this server",
    TIMED_OUT: "timed out",
    ENGINE_ERROR: "failed",
    NO_RESULTS: "found nothing",
    COOLING_DOWN: "was skipped after repeated failures",
    OUT_OF_TIME: "was not tried (out of time)",
    NOT_APPLICABLE: "was skipped",
}


class EngineFailure(Exception):
    """An engine could not answer. `kind` is one of FAILURE_KINDS; `detail` is a short technical reason
    ("HTTP 503", "connection refused") shown by `search-check`; `retry_after` (seconds) is the engine's own
    request to wait, which the breaker honours."""

    def __init__(
        self, kind: str, detail: str = "", *, retry_after: float | None = None, status: int | None = None
    ) -> None:
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}")
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail
        self.retry_after = retry_after
        self.status = status  # the HTTP status, when there was one


@dataclass(frozen=True)
class Attempt:
    """One engine's part in one search."""

    engine: str  # the name people read: "Openverse"
    status: str  # ANSWERED or one of the kinds above
    detail: str = ""
    latency_ms: float | None = None  # None when the engine was not called
    results: int = 0
    cached: bool = False  # answered from the shared result cache

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def sentence_part(self) -> str:
        """ "Openverse timed out" / "DuckDuckGo is rate-limiting this server (HTTP 403)"."""
        text = f"{self.engine} {PHRASES.get(self.status, self.status)}"
        if self.status == NOT_APPLICABLE and self.detail:
            text += f" ({self.detail})"
        return text


def failure_message(attempts: list[Attempt] | tuple[Attempt, ...]) -> str:
    """One sentence for a search that found nothing, naming each engine considered and what happened.

    It reads on after "No results: " (the status line) or "outlyne: " (the CLI). When every engine failed
    the same way the shared cause comes first, since that is what an operator acts on.
    """
    if not attempts:
        return "no search engine is configured."
    kinds = {a.status for a in attempts}
    names = _join([a.engine for a in attempts])
    if kinds == {OFFLINE}:
        return f"this server cannot reach the image search engines (offline or DNS failure); tried {names}."
    if kinds == {RATE_LIMITED}:
        return (
            f"the image search engines are rate-limiting this server (tried {names}); try again in a minute."
        )
    if kinds == {TIMED_OUT}:
        return f"the image search engines did not answer in time; tried {names}."
    if kinds == {NO_RESULTS}:
        return f"nothing found for this query; tried {names}."
    return _join([a.sentence_part() for a in attempts], sep="; ") + "."


def _join(parts: list[str], sep: str = ", ") -> str:
    return sep.join(parts)
