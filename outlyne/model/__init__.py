"""The SigLIP encoder: where the model comes from (source), its export to OpenVINO IR (export, calibration),
the IR cache (ir_cache), the pixels it takes (preprocess) and the encoder that runs it (encoder). Every
encoder satisfies the `Embedder` protocol of embedder.py; nothing outside this package knows which one runs.
A new precision is one entry in export.py."""
