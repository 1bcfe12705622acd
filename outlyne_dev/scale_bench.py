"""Scaling-out figures: the encoder service with dynamic batching on vs off, and Milvus vs numpy search.

    python -m outlyne_dev.scale_bench --random-weights --out benchmarks/bench-scale.json

1. The encoder service (scripts/serve_encoder.sh, Triton through PyTriton) is started twice on the same IR:
   with dynamic batching, and with it off (each request runs alone). For 1, 4 and 16 concurrent clients,
   sharing `--images` single-image requests per round through RemoteEncoder (binary KServe V2 over HTTP,
   keep-alive): images per second, the median of `--rounds` rounds. Clients and
   service share this machine's cores, as front-ends and a service on one host would.
2. Exact top-30 search over 100,000 x 768 random unit vectors: numpy (the folder index's code) vs a
   milvus-lite collection written by the Milvus gallery's own code (FLAT, inner product); median per query,
   plus the time the 100 inserts of 1000 rows took.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from outlyne.config import Config
from outlyne.errors import EncoderUnavailable
from outlyne.model.embedder import l2_normalize
from outlyne.progress import progress_to_stderr

CLIENTS = (1, 4, 16)
READ_TIMEOUT_S = 600.0
SEARCH_ROWS, SEARCH_DIM, SEARCH_K, SEARCH_REPEATS = 100_000, 768, 30, 21


def _images_per_second(encoder, clients: int, images: int, image: np.ndarray) -> tuple[float, int]:
    """`clients` threads share `images` single-image requests (a fixed workload, so no round ends with
    requests in flight): (images per second from the first request to the last answer, failed requests)."""
    per_client = -(-images // clients)
    done = [0] * clients
    failed = [0] * clients
    start_line = threading.Barrier(clients + 1)

    def client(slot: int) -> None:
        start_line.wait()
        for _ in range(per_client):
            try:
                encoder.embed_images([image])
            except EncoderUnavailable:
                failed[slot] += 1
            else:
                done[slot] += 1

    threads = [threading.Thread(target=client, args=(slot,)) for slot in range(clients)]
    for thread in threads:
        thread.start()
    start_line.wait()
    began = time.monotonic()
    for thread in threads:
        thread.join()
    return sum(done) / (time.monotonic() - began), sum(failed)


def measure_service(config: Config, *, images: int, rounds: int, workdir: Path) -> dict:
    from outlyne.model.encoder import load_encoder
    from outlyne.model.remote import RemoteEncoder
    from outlyne_dev.encoder_service import EncoderService, build_environment

    local = load_encoder(config, progress=progress_to_stderr)  # exports into the cache when missing
    side = local.preprocess_spec.height
    del local
    build_environment()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTLYNE_")}
    env.update(
        OUTLYNE_MODEL=config.model,
        OUTLYNE_PRECISION=config.precision,
        OUTLYNE_CACHE_DIR=str(config.cache_dir),
        HF_HUB_OFFLINE="1",
    )
    if config.threads:
        env["OUTLYNE_THREADS"] = str(config.threads)
    image = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)  # no client resize
    modes = {"dynamic batching": [], "batching off": ["--no-dynamic-batching"]}
    table: dict[str, dict[int, float]] = {}
    failures = dict.fromkeys(modes, 0)
    for mode, arguments in modes.items():
        service = EncoderService(
            workdir / mode.replace(" ", "-"), env, arguments=["--max-batch-size", "16", *arguments]
        )
        progress_to_stderr(f"starting the encoder service ({mode})")
        service.start()
        try:
            # A generous read timeout: on a busy machine a full batch can take tens of seconds, and a
            # timed-out request would measure the client's patience, not the service.
            remote = RemoteEncoder(service.url, read_timeout=READ_TIMEOUT_S)
            remote.embed_images([image] * 4)  # warm-up: connections, first inference
            table[mode] = {}
            for clients in CLIENTS:
                samples = [_images_per_second(remote, clients, images, image) for _ in range(rounds)]
                table[mode][clients] = round(statistics.median(rate for rate, _ in samples), 2)
                failures[mode] += sum(failed for _, failed in samples)
                progress_to_stderr(f"{mode}, {clients} clients: {table[mode][clients]} images/s")
            remote.close()
        finally:
            service.stop()
    on, off = table["dynamic batching"], table["batching off"]
    return {
        "images_per_round": images,
        "rounds": rounds,
        "image_side": side,
        "failed_requests": failures,
        "images_per_second": {
            str(clients): {
                "dynamic_batching": on[clients],
                "batching_off": off[clients],
                "ratio": round(on[clients] / off[clients], 2),
            }
            for clients in CLIENTS
        },
    }


def measure_search(workdir: Path) -> dict:
    from outlyne.search.galleries.milvus import MilvusGallery
    from outlyne.search.galleries.scan import Entry
    from outlyne_dev.search_bench import measure_local_search

    numpy_figures = measure_local_search(rows=SEARCH_ROWS, dim=SEARCH_DIM, k=SEARCH_K, repeats=SEARCH_REPEATS)
    rng = np.random.default_rng(0)
    vectors = l2_normalize(rng.standard_normal((SEARCH_ROWS, SEARCH_DIM), dtype=np.float32))
    queries = l2_normalize(rng.standard_normal((SEARCH_REPEATS + 1, SEARCH_DIM), dtype=np.float32))
    gallery = MilvusGallery(str(workdir / "bench.db"), "bench", SEARCH_DIM)
    gallery.create()
    folder = Path("/bench")
    rows = ((Entry(f"{i}.jpg", 0, 0, "0" * 64, 0, 0), vectors[i]) for i in range(SEARCH_ROWS))
    start = time.perf_counter()
    gallery.upsert(folder, rows)
    gallery.call("flush", gallery.collection)  # as `index` does: seals the rows into searchable segments
    insert_s = time.perf_counter() - start
    gallery.nearest(queries[0], SEARCH_K)  # warm-up
    times = []
    for query in queries[1:]:
        start = time.perf_counter()
        gallery.nearest(query, SEARCH_K)
        times.append(time.perf_counter() - start)
    gallery.close()
    milvus_ms = round(statistics.median(times) * 1000, 2)
    return {
        "rows": SEARCH_ROWS,
        "dim": SEARCH_DIM,
        "k": SEARCH_K,
        "numpy_query_ms": numpy_figures["image_query_ms"],
        "milvus_lite_query_ms": milvus_ms,
        "milvus_vs_numpy": round(milvus_ms / numpy_figures["image_query_ms"], 2),
        "milvus_lite_insert_s": round(insert_s, 1),
    }


def _load(results: dict) -> str:
    """The 1-minute load average around the run: a busy machine moves every figure."""
    load = results.get("load_average")
    return f" (1-minute load average {load['before']} before, {load['after']} after)" if load else ""


def to_markdown(results: dict) -> str:
    machine = results["machine"]
    lines = [
        f"Machine: {machine['cpu_model']}, {machine['cpus_usable']} usable CPUs{_load(results)}. "
        f"Model: {results['architecture']}, {results['precision']}."
    ]
    if "service" in results:
        service = results["service"]
        lines += [
            f"{service['rounds']} rounds of {service['images_per_round']} single-image requests per cell, "
            f"median; failed requests: {service['failed_requests']}.",
            "",
            "| concurrent clients | images/s, dynamic batching | images/s, batching off | ratio |",
            "|---:|---:|---:|---:|",
        ]
        for clients, row in service["images_per_second"].items():
            lines.append(
                f"| {clients} | {row['dynamic_batching']} | {row['batching_off']} | {row['ratio']}x |"
            )
    if "search" in results:
        search = results["search"]
        lines += [
            "",
            f"Exact top-{search['k']} search over {search['rows']:,} x {search['dim']}: numpy "
            f"{search['numpy_query_ms']} ms, milvus-lite {search['milvus_lite_query_ms']} ms per query "
            f"(median; {search['milvus_vs_numpy']}x); writing the rows into milvus-lite in batches of 1000 "
            f"took {search['milvus_lite_insert_s']} s.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m outlyne_dev.scale_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--random-weights", action="store_true", help="siglip-base-patch16-224, random weights"
    )
    parser.add_argument("--images", type=int, default=32, help="single-image requests per measuring round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per cell (the median is reported)")
    parser.add_argument("--only", choices=("service", "search"), help="run one of the two parts")
    parser.add_argument("--out", type=Path, help="write the JSON here and a .md table beside it")
    args = parser.parse_args(argv)

    from outlyne_dev import benchmark

    config = Config.from_env()
    architecture = config.model
    if args.random_weights:
        folder = Path(config.cache_dir) / "bench" / f"{benchmark.BASE_ARCHITECTURE}-random"
        config = config.with_options(model=str(benchmark.build_random_checkpoint(folder)))
        architecture = f"{benchmark.BASE_ARCHITECTURE} (random weights)"
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as scratch:
        machine = benchmark.machine_section(None, {})["machine"]  # needs no context
        results = {
            "machine": machine,
            "architecture": architecture,
            "precision": config.precision,
            "command": "python -m outlyne_dev.scale_bench " + " ".join(sys.argv[1:]),
        }
        load_before = round(os.getloadavg()[0], 2)
        if args.only != "service":
            results["search"] = measure_search(Path(scratch))
            progress_to_stderr(f"search: {results['search']}")
        if args.only != "search":
            results["service"] = measure_service(
                config, images=args.images, rounds=args.rounds, workdir=Path(scratch)
            )
    results["load_average"] = {"before": load_before, "after": round(os.getloadavg()[0], 2)}
    text = json.dumps(results, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        args.out.with_suffix(".md").write_text(to_markdown(results))
    print(to_markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
