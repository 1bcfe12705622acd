"""The concept bank: concepts.json parsed and checked (file.py), its text embeddings computed once and
cached on disk, then one matrix product per sketch (bank.py)."""
