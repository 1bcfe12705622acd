"""Measure the served app: start-up with a warm cache, and memory over many searches.

    python scripts/measure_app.py [--workdir DIR] [--checkpoint DIR] [--starts 3] [--searches 50] [--json]

1. Start-up: the real siglip-base-patch16-224 architecture with random weights (timing does not depend on
   weight values; built once by outlyne_dev.benchmark.checkpoint_to_measure unless --checkpoint is given),
   baked with the Dockerfile's own build steps, then `python app.py` started --starts times: seconds from
   process start until the page answers 200.
2. Memory: one server with the local-folder backend; resident memory (RSS) of the serving process after
   the first search and after --searches searches through gradio_client. Growth beyond noise would mean
   a leak in a request path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from outlyne.config import DEFAULT_PRECISION  # noqa: E402
from outlyne_dev.app_server import (  # noqa: E402 - the repo root must be importable first
    AppServer,
    app_environment,
    bake_like_the_image,
    free_port,
    make_gallery,
    wait_until_answers,
)
from outlyne_dev.benchmark import checkpoint_to_measure  # noqa: E402


def machine() -> dict[str, object]:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import openvino

    return {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "openvino": openvino.get_version(),
        "os": platform.platform(),
    }


def measuring_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options every measuring script here shares: where to work, which checkpoint, JSON out."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path.home() / ".cache" / "outlyne-measure")
    parser.add_argument("--checkpoint", type=Path, help="a SigLIP checkpoint folder (default: random base)")
    parser.add_argument("--json", action="store_true")
    return parser


def launch(env: dict[str, str], workdir: Path, name: str, timeout: float = 600) -> tuple[AppServer, float]:
    """Start `python app.py` and return it with the seconds it took to answer its page."""
    port = free_port()
    env = {**env, "GRADIO_SERVER_PORT": str(port)}
    log_path = workdir / f"{name}.log"
    with log_path.open("w") as log:
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    server = AppServer(f"http://127.0.0.1:{port}/", process, log_path, Path(), env)
    wait_until_answers(server, timeout=timeout)
    return server, time.perf_counter() - start


def measure_startup(env: dict[str, str], workdir: Path, starts: int) -> dict[str, object]:
    times = []
    for index in range(starts):
        server, seconds = launch(env, workdir, f"startup-{index}")
        server.stop()
        times.append(round(seconds, 2))
        print(f"start {index + 1}/{starts}: page answered after {seconds:.2f} s", file=sys.stderr)
    return {"median_s": statistics.median(times), "runs_s": times}


def rss_mb(pid: int) -> float:
    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def measure_memory(env: dict[str, str], workdir: Path, searches: int) -> dict[str, object]:
    from gradio_client import Client, handle_file

    drawings = sorted((ROOT / "examples").glob("*.png"))
    if not drawings:
        raise SystemExit("measure_app: no examples/*.png to search with")
    server, _ = launch(env, workdir, "memory")
    try:
        client = Client(server.url, verbose=False)
        samples = {}
        for count in range(1, searches + 1):
            drawing = drawings[(count - 1) % len(drawings)]
            result = client.predict(handle_file(str(drawing)), api_name="/search")
            if not result["results"]:
                raise SystemExit(f"measure_app: search {count} returned no results")
            if count in (1, 10, 25, searches):
                samples[count] = rss_mb(server.process.pid)
                print(f"after {count} searches: RSS {samples[count]} MB", file=sys.stderr)
    finally:
        server.stop()
    first, last = samples[1], samples[searches]
    return {
        "rss_mb_after": samples,
        "growth_mb": round(last - first, 1),
        "growth_percent": round(100 * (last - first) / first, 1),
    }


def to_markdown(report: dict) -> str:
    m = report["machine"]
    startup = report["startup"]
    memory = report["memory"]
    samples = ", ".join(f"{n}: {mb} MB" for n, mb in memory["rss_mb_after"].items())
    return "\n".join(
        [
            f"Machine: {m['cpu']}, {m['usable_cpus']} usable of {m['logical_cpus']} logical CPUs, "
            f"{m['ram_gb']} GB RAM, Python {m['python']}, OpenVINO {m['openvino']}.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| start-up to a page that answers (warm cache, base architecture, {report['precision']}) "
            f"| median {startup['median_s']} s (runs: {', '.join(map(str, startup['runs_s']))} s) |",
            f"| serving process RSS after searches (local backend) | {samples} |",
            f"| growth from search 1 to {report['searches']} | {memory['growth_mb']} MB "
            f"({memory['growth_percent']} %) |",
        ]
    )


def main() -> int:
    parser = measuring_parser(__doc__)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--searches", type=int, default=50)
    args = parser.parse_args()
    if args.searches < 1 or args.starts < 1:
        parser.error("--starts and --searches must be positive")

    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = checkpoint_to_measure(args.checkpoint, workdir)
    gallery = make_gallery(workdir / "gallery", count=60)
    env = app_environment(workdir, checkpoint, gallery, free_port())
    print("baking the cache with the Dockerfile's steps and indexing the gallery", file=sys.stderr)
    bake_like_the_image(gallery, env, timeout=3600)  # a base-architecture export takes minutes

    report = {
        "machine": machine(),
        "precision": env.get("OUTLYNE_PRECISION") or DEFAULT_PRECISION,
        "startup": measure_startup(env, workdir, args.starts),
        "searches": args.searches,
        "memory": measure_memory(env, workdir, args.searches),
        "command": "python scripts/measure_app.py " + " ".join(sys.argv[1:]),
    }
    print(json.dumps(report, indent=2) if args.json else to_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
