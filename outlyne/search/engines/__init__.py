"""Web image search engines, one module each (SearXNG's searx/engines/*.py is the model).

Each module starts with its metadata (`about`, `NAME`, `TITLE`, base URL, page size, pace) and defines
`parse(answer) -> list[SearchResult]` (pure: the engine's documented JSON in, results out, one row at a
time through `parsing.read_rows`) and `Engine` (a `words.WordSearch`), whose `search(request) ->
list[SearchResult]` asks the engine and raises `report.EngineFailure` (offline, rate-limited, timed out,
engine error) when it cannot. Base URLs and HTTP clients are constructor arguments, so tests point engines
at 127.0.0.1. Engines know nothing of each other, of caching or of fallback: that is the chain's job
(chain.py).
"""
