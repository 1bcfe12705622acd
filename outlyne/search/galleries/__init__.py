"""Searchable collections of the user's own images (a folder index today)."""
