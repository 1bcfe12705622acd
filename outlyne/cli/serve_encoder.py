"""`python -m outlyne serve-encoder [--port 8000] ...`: the encoder as a Triton service (KServe V2).

Runs in the encoder service's own environment (requirements-encoder.txt), which
`bash scripts/serve_encoder.sh --port PORT` builds on first use; the app then uses it with
OUTLYNE_ENCODER=kserve-v2://HOST:PORT. Model, precision, cache and threads come from the same OUTLYNE_*
variables as the app. Runs in the foreground until Ctrl+C or SIGTERM.
"""

from __future__ import annotations

import argparse

from outlyne.model.wire import DEFAULT_NAME


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve-encoder",
        help="serve the encoder over KServe V2 (Triton via PyTriton; see scripts/serve_encoder.sh)",
        description="Serve the SigLIP vision and text towers as a Triton Inference Server with dynamic "
        "batching. Needs the encoder service's environment: run it through scripts/serve_encoder.sh.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="KServe V2 HTTP port (default 8000)")
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="Prometheus metrics port (default PORT+2)"
    )
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"model name prefix (default {DEFAULT_NAME})")
    parser.add_argument("--max-batch-size", type=int, default=16, help="largest batch one inference runs")
    parser.add_argument(
        "--max-queue-delay-us",
        type=int,
        default=2000,
        help="how long a request may wait for others to batch with (microseconds, default 2000)",
    )
    parser.add_argument(
        "--no-dynamic-batching", action="store_true", help="run every request on its own (for comparison)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from outlyne.config import Config
    from outlyne.model.service import ServiceOptions, serve

    options = ServiceOptions(
        host=args.host,
        port=args.port,
        metrics_port=args.metrics_port,
        name=args.name,
        max_batch_size=args.max_batch_size,
        max_queue_delay_us=args.max_queue_delay_us,
        dynamic_batching=not args.no_dynamic_batching,
    )
    serve(options, Config.from_env())
    return 0
