"""What every web engine is, seen as a search backend (types.SearchBackend)."""

from __future__ import annotations


class WordSearch:
    """Searched by the query's words, and ordered by the engine's own ranking (so results are re-ranked
    by likeness to the sketch afterwards). Each engine's `Engine` starts from this."""

    supports_text_query = True
    ranks_visually = False
