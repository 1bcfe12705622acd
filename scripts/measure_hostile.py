"""Measure the served app under attack: memory while hostile inputs arrive four at a time, and
/interrogate latency while a search engine hangs.

    python scripts/measure_hostile.py [--workdir DIR] [--checkpoint DIR] [--rounds 3] [--calls 20] [--json]

The real siglip-base-patch16-224 architecture with random weights (built once; memory and latency do not
depend on weight values), baked with the Dockerfile's steps, served by `python app.py` with
OUTLYNE_SEARCH=ddg whose traffic goes to a local "proxy" that accepts connections and never answers:
a hanging search engine.

1. Memory: resident memory (RSS) of the serving process sampled every 20 ms while four threads send, --rounds
   times each, the attacks of issue 11: the drawing paper's own event with a PNG declaring 13000 x 13000,
   a 9400 x 9400 upload, a legal 7000 x 7000 PNG (decoded, reduced), a truncated PNG, an EPS renamed
   .png. Peak during, held afterwards, against before.
2. Lanes: /interrogate p50 over --calls calls when idle, then again while two searches hang on the engine
   (one that reaches its deadline is replaced before the next call, so two hang during every call).
"""

from __future__ import annotations

import contextlib
import json
import socket
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from measure_app import launch, machine, measuring_parser  # noqa: E402 - same folder

from outlyne_dev.app_server import app_environment, bake_like_the_image, free_port, make_gallery  # noqa: E402
from outlyne_dev.benchmark import checkpoint_to_measure  # noqa: E402
from outlyne_dev.hostile import EPS_BYTES, drawing_png, encoded, png_declaring, truncated_png  # noqa: E402
from outlyne_dev.queue_client import QueueClient  # noqa: E402


class HangingProxy:
    """Accepts TCP connections and never answers: every request through it hangs until the client gives up."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(connection)


class RssSampler:
    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def mb(value: float) -> float:
    return round(value / 2**20, 1)


def attacks(base_url: str, workdir: Path) -> list:
    """Callables, each one attack; they raise nothing on refusal (a refusal is the expected answer)."""
    from gradio_client import Client, handle_file
    from PIL import Image

    raw = QueueClient(base_url)
    client = Client(base_url, verbose=False)
    files = {
        "bomb.png": png_declaring(13000, 13000),
        "upload-9400.png": png_declaring(9400, 9400),
        "legal-7000.png": encoded(Image.new("RGB", (7000, 7000), "white")),
        "cut.png": truncated_png(),
        "eps.png": EPS_BYTES,
    }
    for name, data in files.items():
        (workdir / name).write_bytes(data)

    def paper_bomb() -> None:  # the paper's own event, as any client can send it
        raw.score_drawing(raw.data_url(files["bomb.png"]))

    def api(name: str):
        def call() -> None:
            with contextlib.suppress(Exception):  # a refusal arrives as AppError: the expected answer
                client.predict(handle_file(str(workdir / name)), api_name="/interrogate")

        return call

    return [
        paper_bomb,
        api("upload-9400.png"),
        api("legal-7000.png"),
        api("cut.png"),
        api("eps.png"),
        api("bomb.png"),
    ]


def measure_memory(server, workdir: Path, rounds: int) -> dict:
    from gradio_client import Client, handle_file

    drawing = workdir / "drawing.png"
    drawing.write_bytes(drawing_png())
    client = Client(server.url, verbose=False)
    client.predict(handle_file(str(drawing)), api_name="/interrogate")  # warm
    time.sleep(2)
    before = psutil.Process(server.process.pid).memory_info().rss
    work = attacks(server.url, workdir) * rounds
    with RssSampler(server.process.pid) as sampler, ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda attack: attack(), work))
    client.predict(handle_file(str(drawing)), api_name="/interrogate")  # still answers
    time.sleep(5)
    held = psutil.Process(server.process.pid).memory_info().rss
    return {
        "attacks_sent": len(work),
        "rss_before_mb": mb(before),
        "rss_peak_mb": mb(sampler.peak),
        "rss_held_mb": mb(held),
        "held_vs_before_percent": round(100 * (held - before) / before, 1),
    }


def interrogate_times(client, drawing: Path, calls: int, before_each=lambda: None) -> list[float]:
    from gradio_client import handle_file

    times = []
    for _ in range(calls):
        before_each()
        start = time.perf_counter()
        client.predict(handle_file(str(drawing)), api_name="/interrogate")
        times.append(time.perf_counter() - start)
    return times


def p50_ms(times: list[float]) -> float:
    return round(statistics.median(times) * 1000, 1)


class HangingSearches:
    """Keeps `count` searches waiting on the hanging engine for as long as it runs: a search gives up at
    its own deadline, so one that ended is replaced before the next measured call."""

    def __init__(self, url: str, drawing: Path, count: int = 2) -> None:
        from gradio_client import Client

        self.client = Client(url, verbose=False)
        self.drawing = drawing
        self.jobs = [self._submit() for _ in range(count)]
        self.replaced = 0

    def _submit(self):
        from gradio_client import handle_file

        return self.client.submit(handle_file(str(self.drawing)), api_name="/search")

    def hanging(self) -> int:
        return sum(not job.done() for job in self.jobs)

    def top_up(self) -> None:
        for index, job in enumerate(self.jobs):
            if job.done():
                self.jobs[index] = self._submit()
                self.replaced += 1
        deadline = time.monotonic() + 30
        while self.hanging() < len(self.jobs) and time.monotonic() < deadline:
            time.sleep(0.05)


def measure_lanes(server, workdir: Path, calls: int) -> dict:
    from gradio_client import Client

    drawing = workdir / "drawing.png"
    client = Client(server.url, verbose=False)
    idle = interrogate_times(client, drawing, calls)
    searches = HangingSearches(server.url, drawing)
    time.sleep(3)  # both searches are now waiting on the engine
    assert searches.hanging() == len(searches.jobs), "the searches did not hang"
    hanging_at_call: list[int] = []

    def before_each() -> None:
        searches.top_up()
        hanging_at_call.append(searches.hanging())

    busy = interrogate_times(client, drawing, calls, before_each)
    return {
        "idle_p50_ms": p50_ms(idle),
        "engine_hanging_p50_ms": p50_ms(busy),
        "ratio": round(statistics.median(busy) / statistics.median(idle), 2),
        "searches_hanging_at_each_call_min": min(hanging_at_call),
        "searches_replaced_after_their_deadline": searches.replaced,
    }


def main() -> int:
    parser = measuring_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--precision", help="OUTLYNE_PRECISION for the measured app (default: the default)")
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = checkpoint_to_measure(args.checkpoint, workdir)
    gallery = make_gallery(workdir / "gallery", count=8)
    proxy = HangingProxy()
    env = app_environment(workdir, checkpoint, gallery, free_port())
    if args.precision:
        env["OUTLYNE_PRECISION"] = args.precision
    print("baking the cache with the Dockerfile's steps", file=sys.stderr)
    bake_like_the_image(gallery, env, timeout=3600)
    env = {**env, "OUTLYNE_SEARCH": "ddg", "DDGS_PROXY": proxy.url}
    server, _ = launch(env, workdir, "hostile")
    try:
        report = {
            "machine": machine(),
            "precision": env.get("OUTLYNE_PRECISION", "default"),
            "memory": measure_memory(server, workdir, args.rounds),
            "lanes": measure_lanes(server, workdir, args.calls),
            "command": "python scripts/measure_hostile.py " + " ".join(sys.argv[1:]),
        }
    finally:
        server.stop()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
