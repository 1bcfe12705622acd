"""Finding images for a query: web engines (engines/, one module each) or galleries (galleries/), chosen
by OUTLYNE_SEARCH (backends.py); guarded thumbnail downloads (fetch.py) and re-ranking by likeness to the
sketch (rerank.py). Every backend takes a SearchRequest and returns SearchResults (types.py)."""
