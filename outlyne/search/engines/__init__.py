"""Web image engines, one module each, each with `search(request) -> results`."""
