"""Outlyne: sketch in, matching images out, with no text typed."""

__version__ = "0.1.0"
