"""What every gallery is, seen as a search backend (types.SearchBackend)."""

from __future__ import annotations


class EmbeddingSearch:
    """Searched by the sketch's embedding (the query's text embedding may be blended in, but its words are
    never searched for), so results come ordered by likeness to the sketch already and are not re-ranked.
    Each gallery backend starts from this."""

    supports_text_query = False
    ranks_visually = True
