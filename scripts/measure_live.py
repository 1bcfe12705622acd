"""Measure the page as a person meets it: live scores after each stroke, uploads, "why", first start.

    python scripts/measure_live.py [--workdir DIR] [--checkpoint DIR] [--strokes 20] [--explains 5]
                                   [--threads 2] [--concepts FILE] [--first-start] [--json]

The real siglip-base-patch16-224 architecture with random weights (timing does not depend on weight
values; built once by outlyne_dev.benchmark.checkpoint_to_measure unless --checkpoint is given), at
OUTLYNE_PRECISION=int8-static with OUTLYNE_THREADS=--threads, served by `python app.py` with the local
gallery backend and driven by Debian's chromium through Playwright (launch flags of the browser tests).

1. First start (--first-start): `python app.py` on an empty cache; seconds until the page answers (it
   answers at once and shows the preparation's progress), and until it is ready to score (export, INT8
   calibration and the concept embeddings done: the first interrogation answers).
   Without it the cache is baked first with the Dockerfile's own steps, as in the image.
2. Live scores: --strokes strokes drawn with the mouse, one at a time; for each, the browser's own clock
   from pen-up (the page raises its version in the pointerup handler) to the moment the score view shows
   that version (web/live.py records both), and the upload and queue requests the stroke caused.
3. Why: --explains taps on a concept; the wall time from the tap to the heatmap's caption, and the time
   the server spent on the occlusion batch (from the caption).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from measure_app import launch, machine  # noqa: E402 - scripts/ is this script's own folder on sys.path

from outlyne_dev.app_server import (  # noqa: E402 - the repo root must be importable first
    app_environment,
    bake_like_the_image,
    free_port,
    make_gallery,
)
from outlyne_dev.benchmark import checkpoint_to_measure  # noqa: E402
from outlyne_dev.browser import PAPER_DRAWABLE_JS, SETTLED_JS, launch_chromium  # noqa: E402


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 1), "p95": round(p95, 1), "max": round(ordered[-1], 1)}


def wait_until_prepared(url: str, workdir: Path) -> None:
    """Until the first start's preparation (export, calibration, concept embeddings) is done: a request
    made meanwhile waits for it in the queue (outlyne/web/startup.py), so one interrogation is the signal."""
    from gradio_client import Client, handle_file

    from outlyne_dev.hostile import drawing_png

    drawing = workdir / "first-start-drawing.png"
    drawing.write_bytes(drawing_png())
    Client(url, verbose=False).predict(handle_file(str(drawing)), api_name="/interrogate")


def stroke_points(index: int) -> list[tuple[float, float]]:
    """A different short stroke each time (zigzags, arcs, boxes), as fractions of the paper."""
    x, y = 0.15 + 0.07 * (index % 10), 0.15 + 0.3 * (index // 10 % 3)
    kind = index % 3
    if kind == 0:
        return [(x + 0.04 * k, y + (0.08 if k % 2 else 0)) for k in range(6)]
    if kind == 1:
        return [(x + 0.1 * (k / 8), y + 0.1 - 0.1 * (1 - (k / 4 - 1) ** 2)) for k in range(9)]
    return [(x, y), (x + 0.15, y), (x + 0.15, y + 0.15), (x, y + 0.15), (x, y)]


def measure_page(url: str, strokes: int, explains: int) -> dict[str, object]:
    with launch_chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(1_800_000)  # a busy machine is slow, not broken
        requests: list[str] = []
        page.on(
            "request",
            lambda r: (
                requests.append("upload" if "/upload" in r.url else "join")
                if r.method == "POST" and ("/upload" in r.url or "/queue/join" in r.url)
                else None
            ),
        )
        page.goto(url)
        page.locator("#outlyne-sketch canvas[data-ready=true]").wait_for()
        page.wait_for_function(PAPER_DRAWABLE_JS)
        page.wait_for_function(SETTLED_JS)
        box = page.locator("#outlyne-sketch canvas").bounding_box()
        assert box is not None
        latencies, uploads, joins, server = [], [], [], []
        for index in range(strokes):
            before = len(requests)
            points = [
                (box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke_points(index)
            ]
            page.mouse.move(*points[0])
            page.mouse.down()
            for point in points[1:]:
                page.mouse.move(*point, steps=3)
            page.mouse.up()
            page.wait_for_function(SETTLED_JS)
            latencies.append(page.evaluate("window.outlyne.currentAt - window.outlyne.changedAt"))
            # The server's own share (normalize + embed + score), from the timings line under the tabs.
            total = re.search(r"total ([\d.]+) ms", page.locator("#outlyne-timings").inner_text())
            if total:
                server.append(float(total.group(1)))
            uploads.append(requests[before:].count("upload"))
            joins.append(requests[before:].count("join"))

        result: dict[str, object] = {
            "strokes": strokes,
            "pen_up_to_scores_ms": percentiles(latencies),
            "server_pipeline_ms": percentiles(server) if server else None,
            "uploads_per_stroke": {"max": max(uploads), "total": sum(uploads)},
            "scoring_requests_per_stroke": {"max": max(joins), "min": min(joins)},
        }
        print(json.dumps(result), file=sys.stderr, flush=True)  # kept even if a later step fails

        explain_wall, explain_server, explain_runs = [], [], []
        caption = page.locator("#outlyne-why-caption")
        for index in range(explains):
            bar = page.locator("#outlyne-concepts [data-label]").nth(index % 5)
            label = bar.get_attribute("data-label")
            start = time.perf_counter()
            bar.click()
            page.wait_for_function(
                "(label) => document.querySelector('#outlyne-why-caption').innerText.includes(label)"
                " && document.querySelector('#outlyne-why img') !== null",
                arg=label,
            )
            explain_wall.append((time.perf_counter() - start) * 1000)
            match = re.search(r"\((\d+) runs, ([\d.]+) (ms|s)\)", caption.inner_text())
            if match:
                explain_runs.append(int(match.group(1)))
                explain_server.append(float(match.group(2)) * (1000 if match.group(3) == "s" else 1))
    return {
        **result,
        "explain_tap_to_heatmap_ms": percentiles(explain_wall) if explain_wall else None,
        "explain_server_ms": percentiles(explain_server) if explain_server else None,
        "explain_encoder_runs": explain_runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workdir", type=Path, help="kept afterwards when given (default: a temporary folder)"
    )
    parser.add_argument("--checkpoint", type=Path, help="a SigLIP checkpoint (default: random base weights)")
    parser.add_argument("--strokes", type=int, default=20)
    parser.add_argument("--explains", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--concepts", type=Path, help="a smaller concept file: baking is faster, a stroke's cost the same"
    )
    parser.add_argument("--first-start", action="store_true", help="also time a start with an empty cache")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="outlyne-live-"))
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = checkpoint_to_measure(args.checkpoint, workdir)
    gallery = make_gallery(workdir / "gallery")
    env = app_environment(workdir, checkpoint, gallery, free_port())
    env.update(OUTLYNE_PRECISION="int8-static", OUTLYNE_THREADS=str(args.threads))
    if args.concepts:
        env["OUTLYNE_CONCEPTS"] = str(args.concepts.resolve())
    report: dict[str, object] = {
        "machine": machine(),
        "precision": "int8-static",
        "threads": args.threads,
        "concepts": str(args.concepts or "concepts.json"),
    }
    try:
        if args.first_start:
            shutil.rmtree(workdir / "cache", ignore_errors=True)
            start = time.perf_counter()
            server, seconds = launch(env, workdir, "first-start", timeout=3600)
            report["first_start_page_answers_s"] = round(seconds, 1)
            try:
                wait_until_prepared(server.url, workdir)
                report["first_start_ready_s"] = round(time.perf_counter() - start, 1)
            finally:
                server.stop()
            # The cache is now warm: the bake below only indexes the gallery (the app does not index).
        bake_like_the_image(gallery, env, timeout=3600)
        server, seconds = launch(env, workdir, "app")
        report["warm_start_s"] = round(seconds, 1)
        try:
            report.update(measure_page(server.url, args.strokes, args.explains))
        finally:
            server.stop()
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
