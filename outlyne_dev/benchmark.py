"""The vision benchmark: PyTorch eager FP32 against each OpenVINO precision, on this machine.

`run_benchmark` calls a list of section functions in order; each gets the shared context plus the results so
far and returns keys to add, so later stages can append their own sections (SECTIONS.append(...)).

Timing does not depend on weight values, so `--random-weights` builds the real siglip-base-patch16-224
architecture with random weights (no download) and exports it through the same code as a real model.
Latency and throughput are measured in this process, variants interleaved round by round so load from
other processes on a shared machine falls on every variant alike. Peak RSS and cold start are measured in
one fresh child process per variant, the only way to get a clean peak per variant.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from outlyne.config import DEFAULT_PRECISION, PRECISIONS
from outlyne.model.calibration import sketch_images
from outlyne.model.preprocess import preprocess
from outlyne_dev.bench_context import BenchContext, Section
from outlyne_dev.bench_stages import interrogation_section, search_section, stages_markdown

PYTORCH = "pytorch-fp32"
VARIANTS = (PYTORCH, *(f"openvino-{precision}" for precision in PRECISIONS))
BASE_ARCHITECTURE = "siglip-base-patch16-224"
TARGETS = {"default_p50_ratio_max": 0.40, "int8_static_p50_ratio_max": 0.30, "cold_start_s_max": 3.0}
WARMUP = 5
BATCH = 16
BATCH_ROUNDS = 3
COLD_START_RUNS = 3


def build_random_checkpoint(folder: Path) -> Path:
    """The siglip-base-patch16-224 architecture (SiglipConfig() defaults) with random weights, a small
    sentencepiece tokenizer trained on the spot and the standard processor; reused if already built."""
    from outlyne_dev.random_checkpoint import build_random_siglip

    return build_random_siglip(Path(folder))


def checkpoint_to_measure(given: Path | None, workdir: Path) -> Path:
    """The measuring scripts' checkpoint: the one given, else the base architecture with random weights
    (timing and memory do not depend on weight values), built once in `workdir`."""
    if given is not None:
        return given.resolve()
    print("building the random-weight base checkpoint (once)", file=sys.stderr)
    return build_random_checkpoint(workdir / "siglip-base-patch16-224-random").resolve()


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    values = np.asarray(samples_ms)
    return {
        name: round(float(np.percentile(values, q)), 2) for name, q in (("p50", 50), ("p95", 95), ("p99", 99))
    }


# ---- sections -------------------------------------------------------------------------------------------


def machine_section(ctx: BenchContext, results: dict) -> dict:
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    quota = None
    with contextlib.suppress(OSError, ValueError):
        limit, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        quota = None if limit == "max" else round(int(limit) / int(period), 2)
    memory_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory_gb = round(int(Path("/proc/meminfo").read_text().split()[1]) / 2**20, 1)
    versions = {}
    for package in ("openvino", "nncf", "torch", "transformers", "numpy"):
        with contextlib.suppress(Exception):
            import importlib.metadata

            versions[package] = importlib.metadata.version(package)
    return {
        "machine": {
            "cpu_model": cpu_model,
            "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "cgroup_cpu_quota": quota,
            "memory_gb": memory_gb,
            "platform": platform.platform(),
            "python": platform.python_version(),
            "versions": versions,
        }
    }


def export_section(ctx: BenchContext, results: dict) -> dict:
    """Load (exporting when not cached) every OpenVINO precision through the real load_encoder."""
    from outlyne.model.encoder import load_encoder
    from outlyne.model.export import reuse_conversions

    export_s, cached = {}, {}
    # One conversion for all precisions; NNCF's progress bars go to stderr with the rest of the progress.
    with reuse_conversions(), contextlib.redirect_stdout(sys.stderr):
        for precision in PRECISIONS:
            ctx.progress(f"preparing openvino-{precision}")
            started = time.perf_counter()
            encoder = load_encoder(ctx.config.with_options(precision=precision), progress=ctx.progress)
            if encoder.exported_now:
                export_s[precision] = round(time.perf_counter() - started, 1)
            cached[precision] = not encoder.exported_now
            ctx.runners[f"openvino-{precision}"] = encoder.embed_images
            ctx.extras.setdefault("encoders", {})[precision] = encoder
    return {"export_s": export_s, "export_was_cached": cached}


def pytorch_section(ctx: BenchContext, results: dict) -> dict:
    """The baseline: transformers' eager SiglipModel.get_image_features in FP32, same preprocessing."""
    import torch
    from transformers import SiglipModel

    if ctx.config.threads:
        torch.set_num_threads(ctx.config.threads)
    model = SiglipModel.from_pretrained(ctx.checkpoint, dtype=torch.float32).eval()
    spec = next(iter(ctx.extras["encoders"].values())).preprocess_spec

    def embed(images: list) -> np.ndarray:
        with torch.inference_mode():
            pixels = torch.from_numpy(preprocess(images, spec))
            pooled = model.get_image_features(pixel_values=pixels).pooler_output
            return torch.nn.functional.normalize(pooled, dim=-1).numpy()

    ctx.runners = {PYTORCH: embed, **ctx.runners}
    return {"attention_implementation": model.config._attn_implementation}


def latency_section(ctx: BenchContext, results: dict) -> dict:
    image = sketch_images(1, size=448, seed=7)[0]
    batch = sketch_images(BATCH, size=448, seed=8)
    from PIL import Image

    ctx.image_path = Path(ctx.config.cache_dir) / "bench" / "sketch.png"
    ctx.image_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(ctx.image_path)

    load_before = os.getloadavg()
    for runner in ctx.runners.values():
        for _ in range(WARMUP):
            runner([image])
        runner(batch)
    samples: dict[str, list[float]] = {name: [] for name in ctx.runners}
    ctx.progress(f"single-image latency: {ctx.runs} rounds over {len(ctx.runners)} variants")
    for _ in range(ctx.runs):  # interleaved: background load hits every variant alike
        for name, runner in ctx.runners.items():
            started = time.perf_counter()
            runner([image])
            samples[name].append((time.perf_counter() - started) * 1000)
    batch_ms: dict[str, list[float]] = {name: [] for name in ctx.runners}
    ctx.progress(f"batch-{BATCH} throughput: {BATCH_ROUNDS} rounds")
    for _ in range(BATCH_ROUNDS):
        for name, runner in ctx.runners.items():
            started = time.perf_counter()
            runner(batch)
            batch_ms[name].append((time.perf_counter() - started) * 1000)

    stats = {name: _percentiles(values) for name, values in samples.items()}
    baseline = stats[PYTORCH]["p50"] if PYTORCH in stats else None
    encoders = ctx.extras["encoders"]
    torch_threads = None
    with contextlib.suppress(Exception):
        import torch

        torch_threads = torch.get_num_threads()
    return {
        "runs": ctx.runs,
        "warmup_runs": WARMUP,
        "single_image_p50_ms": {name: s["p50"] for name, s in stats.items()},
        "single_image_p95_ms": {name: s["p95"] for name, s in stats.items()},
        "single_image_p99_ms": {name: s["p99"] for name, s in stats.items()},
        "p50_ratio_vs_pytorch": {name: round(s["p50"] / baseline, 3) for name, s in stats.items()}
        if baseline
        else {},
        f"batch{BATCH}_images_per_s": {
            name: round(BATCH / (statistics.median(values) / 1000), 2) for name, values in batch_ms.items()
        },
        "threads": {
            "OUTLYNE_THREADS": ctx.config.threads,
            "openvino": {f"openvino-{p}": encoder.threads for p, encoder in encoders.items()},
            "pytorch": torch_threads,
        },
        "timing_includes": "preprocessing (numpy/PIL) + inference + L2 normalization, per call",
        # Other processes on a shared machine skew absolute numbers (PyTorch's OpenMP threads suffer most
        # when cores are oversubscribed): the 1-minute load average says how quiet the machine was.
        "load_average_1min": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
    }


_CHILD_OPENVINO = """
import json, sys, time
from outlyne.config import Config
from outlyne.model.encoder import load_encoder
from outlyne.model.preprocess import load_image
encoder = load_encoder(Config.from_env())
vector = encoder.embed_images([load_image(sys.argv[1])])
first = time.time()
torch_imported = "torch" in sys.modules
encoder.embed_images([load_image(sys.argv[1])] * 16)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the (forked) parent across exec.
peak = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024
print(json.dumps({"first_embedding_at": first, "torch_imported": torch_imported, "peak_rss_mb": peak,
                  "exported_now": encoder.exported_now}))
"""

_CHILD_PYTORCH = """
import json, sys, time
import numpy as np, torch
from transformers import SiglipVisionModel
from outlyne.model.preprocess import PreprocessSpec, load_image, preprocess
spec = PreprocessSpec.from_checkpoint(sys.argv[2])
# Vision tower only, like the OpenVINO children (their text graph is compiled on first use only).
model = SiglipVisionModel.from_pretrained(sys.argv[2], dtype=torch.float32).eval()
def embed(images):
    with torch.inference_mode():
        pooled = model(pixel_values=torch.from_numpy(preprocess(images, spec))).pooler_output
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()
embed([load_image(sys.argv[1])])
first = time.time()
embed([load_image(sys.argv[1])] * 16)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the (forked) parent across exec.
peak = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024
print(json.dumps({"first_embedding_at": first, "torch_imported": True, "peak_rss_mb": peak}))
"""


def _run_child(ctx: BenchContext, code: str, env: dict[str, str]) -> dict:
    started = time.time()
    completed = subprocess.run(
        [sys.executable, "-c", code, str(ctx.image_path), str(ctx.checkpoint)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"benchmark child failed: {completed.stderr.strip()[-2000:]}")
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    report["cold_start_s"] = round(report.pop("first_embedding_at") - started, 3)
    return report


def process_section(ctx: BenchContext, results: dict) -> dict:
    """Fresh processes: cached cold start (start to first embedding, torch never imported) and peak RSS."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OUTLYNE_")}
    env.update(OUTLYNE_MODEL=str(ctx.checkpoint), OUTLYNE_CACHE_DIR=str(ctx.config.cache_dir))
    if ctx.config.threads:
        env["OUTLYNE_THREADS"] = str(ctx.config.threads)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH")])
    )
    cold_start, peak_rss, torch_imported = {}, {}, {}
    for precision in PRECISIONS:
        name = f"openvino-{precision}"
        ctx.progress(f"cold start and peak RSS of {name}: {COLD_START_RUNS} fresh processes")
        reports = [
            _run_child(ctx, _CHILD_OPENVINO, {**env, "OUTLYNE_PRECISION": precision})
            for _ in range(COLD_START_RUNS)
        ]
        if any(report["exported_now"] for report in reports):
            raise RuntimeError(f"{name}: the child process re-exported; the cache is not being reused")
        times = [report["cold_start_s"] for report in reports]
        cold_start[name] = {"median_s": round(statistics.median(times), 3), "runs_s": times}
        peak_rss[name] = round(max(report["peak_rss_mb"] for report in reports), 1)
        torch_imported[name] = any(report["torch_imported"] for report in reports)
    ctx.progress(f"cold start and peak RSS of {PYTORCH}: 1 fresh process")
    report = _run_child(ctx, _CHILD_PYTORCH, env)
    cold_start[PYTORCH] = {"median_s": report["cold_start_s"], "runs_s": [report["cold_start_s"]]}
    peak_rss[PYTORCH] = round(report["peak_rss_mb"], 1)
    return {
        "cold_start_s": cold_start,
        "cold_start_imports_torch": torch_imported,
        "cold_start_method": "new Python process (model + IR cache + OpenVINO compiled-model cache warm) "
        "until its first image embedding returns, image read from a PNG file",
        "peak_rss_mb": peak_rss,
        "peak_rss_method": f"VmHWM of one fresh child process per variant after load, one image and "
        f"one batch of {BATCH} (max over its runs); vision tower only (PyTorch: SiglipVisionModel)",
    }


def targets_section(ctx: BenchContext, results: dict) -> dict:
    ratios = results.get("p50_ratio_vs_pytorch", {})
    default = f"openvino-{DEFAULT_PRECISION}"
    cold = results.get("cold_start_s", {}).get(default, {}).get("median_s")
    met = {
        "default_p50_ratio": ratios.get(default) is not None
        and ratios[default] <= TARGETS["default_p50_ratio_max"],
        "int8_static_p50_ratio": ratios.get("openvino-int8-static") is not None
        and ratios["openvino-int8-static"] <= TARGETS["int8_static_p50_ratio_max"],
        "cold_start": cold is not None and cold < TARGETS["cold_start_s_max"],
    }
    return {"default_precision": DEFAULT_PRECISION, "targets": TARGETS, "targets_met": met}


SECTIONS: list[Section] = [
    machine_section,
    export_section,
    pytorch_section,
    latency_section,
    process_section,
    targets_section,
]


def all_sections() -> list[Section]:
    """The vision sections, then the interrogation and search stages."""
    return [*SECTIONS[:-1], interrogation_section, search_section, SECTIONS[-1]]


def run_benchmark(ctx: BenchContext, sections: list[Section] | None = None) -> dict:
    results: dict = {"benchmark": "vision", "model": str(ctx.checkpoint)}
    for section in all_sections() if sections is None else sections:
        results.update(section(ctx, results))
    return results


def to_markdown(results: dict) -> str:
    """The table for the README: one row per variant."""
    machine = results.get("machine", {})
    threads = results.get("threads", {})
    ov_threads = sorted(set((threads.get("openvino") or {}).values()))
    lines = [
        f"Machine: {machine.get('cpu_model')}, {machine.get('cpus_usable')} usable CPUs "
        f"(OUTLYNE_THREADS={threads.get('OUTLYNE_THREADS')}; OpenVINO threads {ov_threads}, "
        f"PyTorch threads {threads.get('pytorch')}). Model: {results.get('architecture')}, "
        f"{results.get('runs')} runs after {results.get('warmup_runs')} warm-up; "
        f"default precision `{results.get('default_precision')}`. 1-minute load average during the "
        f"latency runs: {results.get('load_average_1min')}.",
        "",
        "| variant | p50 ms | p95 ms | p99 ms | p50 vs PyTorch | batch-16 img/s | peak RSS MB "
        "| cold start s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in VARIANTS:
        if name not in results.get("single_image_p50_ms", {}):
            continue
        cold = results.get("cold_start_s", {}).get(name, {}).get("median_s")
        cells = [
            name,
            f"{results['single_image_p50_ms'][name]:.1f}",
            f"{results['single_image_p95_ms'][name]:.1f}",
            f"{results['single_image_p99_ms'][name]:.1f}",
            f"{results['p50_ratio_vs_pytorch'].get(name, 0):.2f}x",
            f"{results[f'batch{BATCH}_images_per_s'][name]:.1f}",
            str(results.get("peak_rss_mb", {}).get(name, "")),
            "" if cold is None else f"{cold:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    met = results.get("targets_met", {})
    lines += ["", "Targets: " + ", ".join(f"{key} {'met' if ok else 'MISSED'}" for key, ok in met.items())]
    stages = stages_markdown(results)
    return "\n".join(lines) + "\n" + ("\n" + stages if stages else "")
