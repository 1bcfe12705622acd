"""Re-rank web results by what their thumbnails look like: the precision layer after the text query.

The engine ranks by text relevance to a query guessed from the sketch; the sketch's own embedding knows
the shape. Fetch every thumbnail (fetch.py), embed the ones that arrived in one batched encoder call, and
order by cosine to the sketch:

    score = cosine(thumbnail, sketch) + engine_weight * (1 - engine_position / n)

With the default engine_weight = 0 this is pure visual order with the engine's rank breaking exact ties;
a small positive weight (0.02-0.05, the spread of near-tied cosines) lets the engine's text relevance
decide between thumbnails that look about equally close. `similarity` always holds the plain cosine.

Near-duplicates (the same picture re-hosted or resized: thumbnail cosine above `duplicate_threshold`)
are collapsed, keeping the better-ranked one. Results whose thumbnail failed are dropped and counted by
reason, never fatal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from outlyne.model.embedder import Embedder
from outlyne.search.fetch import FetchLimits, fetch_images
from outlyne.search.types import SearchResult


@dataclass(frozen=True)
class RerankOutcome:
    results: list[SearchResult]  # best first, `similarity` set
    dropped: dict[str, int]  # fetch failure reason -> count
    duplicates_collapsed: int


def rerank(
    results: Sequence[SearchResult],
    sketch_embedding: np.ndarray,
    encoder: Embedder,
    *,
    limits: FetchLimits = FetchLimits(),  # noqa: B008 - frozen, so a shared default is safe
    duplicate_threshold: float = 0.97,
    engine_weight: float = 0.0,
    batch_size: int | None = None,
) -> RerankOutcome:
    if not results:
        return RerankOutcome([], {}, 0)
    fetched = fetch_images([result.thumbnail for result in results], limits)
    dropped = Counter(item.error for item in fetched if item.image is None)
    kept = [(result, item.image) for result, item in zip(results, fetched, strict=True) if item.image]
    if not kept:
        return RerankOutcome([], dict(dropped), 0)

    # One call for every thumbnail: the encoder batches internally, which is what makes this affordable.
    embeddings = np.asarray(encoder.embed_images([image for _, image in kept], batch_size=batch_size))
    sketch = np.asarray(sketch_embedding, dtype=np.float32).reshape(-1)
    cosines = embeddings @ sketch
    order = ranked_order([result.engine_rank for result, _ in kept], cosines, engine_weight)

    chosen: list[int] = []
    for index in order:
        if chosen and float(np.max(embeddings[chosen] @ embeddings[index])) > duplicate_threshold:
            continue
        chosen.append(index)
    reranked = [replace(kept[i][0], similarity=float(cosines[i])) for i in chosen]
    return RerankOutcome(reranked, dict(dropped), len(order) - len(chosen))


def ranked_order(engine_ranks: Sequence[int], cosines: np.ndarray, engine_weight: float) -> list[int]:
    """Indices best first by the blended score (module docstring); equal scores keep the engine's order."""
    ranks = np.asarray(engine_ranks, dtype=np.float64)
    # Position among the results we have, so the prior spans [0, 1] whatever gaps dropped rows left.
    positions = np.argsort(np.argsort(ranks, kind="stable"), kind="stable")
    prior = 1.0 - positions / max(len(ranks), 1)
    scores = np.asarray(cosines, dtype=np.float64) + engine_weight * prior
    return sorted(range(len(ranks)), key=lambda i: (-scores[i], ranks[i]))
