"""The tiny random-weight SigLIP checkpoint the tests build (outlyne_dev.random_checkpoint.build_tiny_siglip):
the real loading and export code runs on it. Random weights mean nothing: test mechanics and parity only."""

from outlyne_dev.random_checkpoint import build_tiny_siglip

__all__ = ["build_tiny_siglip"]
