"""Developer tooling: benchmarks, evaluation, Quick, Draw! reading, random checkpoints, launching the app
for tests and measurements. Never imported by the runtime package at import time; not in the Space image."""
