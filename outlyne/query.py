"""Top concepts -> a short web search phrase, with no text typed (seed 000: "chair furniture comfort design").

Rules, in order:
1. Concepts are taken best first (a stable sort on score, so equal scores keep the order they came in).
2. The top concept is always used; a runner-up is used only if its score is at least `weak_ratio` times the
   top score (a distant runner-up is noise that drags search results off topic), up to `max_concepts`.
3. Words: the labels first, then the group words that describe things well ("furniture", "animal"), then
   each concept's search words. Group names that only sort the bank ("shape", "symbol", "custom", ...)
   make bad search words and are skipped.
4. Repeated words are dropped case-insensitively, keeping the first ("coffee cup" + "cup" -> "coffee cup").
5. At most `max_words` words, but the top label is never cut short.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from outlyne.concepts.file import ConceptScore

DEFAULT_MAX_CONCEPTS = 3
# Sigmoid scores are not a distribution: what matters is how far a runner-up is from the winner.
# 0.3 keeps "couch 0.22" beside "chair 0.71" and drops "bench 0.09".
DEFAULT_WEAK_RATIO = 0.3
DEFAULT_MAX_WORDS = 8

# Groups that organize the bank but say nothing a search engine can use (or say something misleading:
# "body" next to "elbow" finds bodybuilders, "style" next to "portrait" finds fashion).
GENERIC_GROUPS = frozenset(
    {
        "shape",
        "symbol",
        "custom",
        "misc",
        "other",
        "body",
        "character",
        "style",
        "scene",
        "household",
        "outdoor",
        "street",
        "lettering",
        "office",
    }
)


def build_query(
    scores: Sequence[ConceptScore],
    *,
    max_concepts: int = DEFAULT_MAX_CONCEPTS,
    weak_ratio: float = DEFAULT_WEAK_RATIO,
    max_words: int = DEFAULT_MAX_WORDS,
) -> str:
    """The search phrase for scored concepts; "" for none. Deterministic: same input, same phrase."""
    chosen = _strong_concepts(scores, max_concepts, weak_ratio)
    if not chosen:
        return ""
    top_label_words = _unique_words([chosen[0].label])
    words = _unique_words(_phrases(chosen))
    limit = max(max_words, len(top_label_words))
    return " ".join(words[:limit])


def _strong_concepts(
    scores: Sequence[ConceptScore], max_concepts: int, weak_ratio: float
) -> list[ConceptScore]:
    ranked = sorted(scores, key=lambda s: -s.score)
    if not ranked or max_concepts < 1:
        return []
    threshold = ranked[0].score * weak_ratio
    runners_up = [s for s in ranked[1:max_concepts] if s.score >= threshold]
    return [ranked[0], *runners_up]


def _phrases(chosen: Sequence[ConceptScore]) -> list[str]:
    labels = [s.label for s in chosen]
    # "musical-instrument" searches as "musical instrument".
    groups = [s.group.replace("-", " ").replace("_", " ") for s in chosen if s.group not in GENERIC_GROUPS]
    extras = [word for s in chosen for word in s.search_words]
    return labels + groups + extras


def _unique_words(phrases: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    words = []
    for phrase in phrases:
        for word in phrase.split():
            key = word.casefold()
            if key not in seen:
                seen.add(key)
                words.append(word)
    return words
