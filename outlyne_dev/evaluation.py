"""How well does Outlyne recognize sketches, and what does each speed-up or normalization step cost?

The method follows the seeds: zero-shot top-1 / top-5 accuracy against the concept bank (seed 003) and, for
the local search, recall@K with every precision compared to fp32 (seed 004). One run measures the baseline
(the configured precision, every normalization step, the full prompt ensemble) and then varies one thing at
a time: a normalization step switched off, a single prompt template, another precision.

The core (`evaluate`) only sees an encoder factory (precision -> Embedder), a bank factory and an optional
`Gallery`, so tests drive it with deterministic fakes; `python -m outlyne eval` wires the real ones.
Images go through the encoder in batches, one pass per embedding variant, so memory holds embeddings, never
the whole image set.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from outlyne.concepts.bank import ConceptBank
from outlyne.concepts.file import PROMPT_TEMPLATES, Concept
from outlyne.config import DEFAULT_PRECISION, PRECISIONS
from outlyne.errors import BadImage, EmptySketch, OutlyneError
from outlyne.images import IMAGE_SUFFIXES
from outlyne.model.embedder import Embedder
from outlyne.sketch.normalize import NormalizeOptions, normalize
from outlyne_dev.quickdraw import read_ndjson, render_strokes

NORMALIZATION_STEPS = ("polarity", "crop", "denoise", "contrast")
VARIANT_KINDS = ("normalization", "templates", "precision")
REFERENCE_PRECISION = "fp32"  # what the other precisions are compared with (seed 004)
AGREEMENT_DEPTH = 5  # "top-5 agreement": how much of fp32's top-5 a precision reproduces

EncoderFactory = Callable[[str], Embedder]
BankFactory = Callable[[Embedder, Sequence[str]], ConceptBank]


# -- the labelled sketches ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    label: str
    source: str
    """Where it came from, for reports: 'cat/003.png' or 'cat.ndjson:<key_id>'."""
    load: Callable[[], Any]
    """Returns what `sketch.normalize` accepts; called once per pass, so nothing big stays in memory."""


@dataclass
class Dataset:
    samples: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Things skipped while reading (malformed lines, stray files), in plain words."""
    sources: list[str] = field(default_factory=list)


def label_key(label: str) -> str:
    """Folder names and Quick, Draw! words both match concept labels: 'Alarm_Clock' == 'alarm clock'."""
    return " ".join(label.replace("_", " ").split()).casefold()


def load_dataset(paths: Iterable[Path], *, limit_per_label: int | None = None) -> Dataset:
    """Labelled sketches from folders (one sub-folder per label) and Quick, Draw! .ndjson files.

    A folder may also hold .ndjson files (the usual layout after downloading a few categories).
    """
    dataset = Dataset()
    for path in map(Path, paths):
        dataset.sources.append(str(path))
        if path.is_dir():
            for ndjson in sorted(p for p in path.iterdir() if _is_ndjson(p)):
                _add_ndjson(dataset, ndjson, limit_per_label)
            _add_folder(dataset, path, limit_per_label)
        elif path.is_file() and _is_ndjson(path):
            _add_ndjson(dataset, path, limit_per_label)
        elif path.exists():
            raise OutlyneError(f"{path} is neither a folder of labelled sketches nor a .ndjson file.")
        else:
            raise OutlyneError(f"{path} does not exist.")
    dataset.samples = _limit_per_label(dataset.samples, limit_per_label)
    if not dataset.samples:
        raise OutlyneError("No labelled sketches found in " + ", ".join(dataset.sources) + ".")
    return dataset


def _is_ndjson(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith((".ndjson", ".ndjson.gz"))


def _add_folder(dataset: Dataset, folder: Path, limit: int | None) -> None:
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
            dataset.problems.append(f"{entry}: not in a label sub-folder, skipped")
        if not entry.is_dir() or entry.name.startswith("."):  # .outlyne/ when the folder is also a gallery
            continue
        images = sorted(p for p in entry.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        for image in images[:limit]:
            # The path itself is the input: normalize decodes it as the app does (alpha flattened on white).
            dataset.samples.append(Sample(entry.name, str(image.relative_to(folder)), partial(Path, image)))


def _add_ndjson(dataset: Dataset, path: Path, limit: int | None) -> None:
    try:
        drawings, problems = read_ndjson(path, limit_per_word=limit)
    except OSError as error:
        raise OutlyneError(f"Cannot read {path}: {error}") from None
    dataset.problems.extend(f"{path.name}: {problem}" for problem in problems)
    for drawing in drawings:
        # Rendered lazily (quickdraw's Sketchpad-like brush): a large file never sits in memory as pixels.
        source = f"{path.name}:{drawing.key_id}" if drawing.key_id else path.name
        dataset.samples.append(Sample(drawing.word, source, partial(render_strokes, drawing.strokes)))


def _limit_per_label(samples: list[Sample], limit: int | None) -> list[Sample]:
    """The limit holds across sources too (a label may come from a folder and an .ndjson file)."""
    if limit is None:
        return samples
    seen: Counter[str] = Counter()
    kept = []
    for sample in samples:
        seen[label_key(sample.label)] += 1
        if seen[label_key(sample.label)] <= limit:
            kept.append(sample)
    return kept


# -- embedding passes ---------------------------------------------------------------------------------


@dataclass
class EmbedPass:
    """One trip of every sample through normalize -> embed, with per-sketch timings."""

    embeddings: np.ndarray
    ok: np.ndarray
    """False where normalization failed (an empty or unreadable sketch): the row is zeros."""
    failures: list[str]
    normalize_ms: list[float]
    embed_ms: list[float]
    """Per sketch, one value per batch (batch time / batch size)."""


def embed_pass(
    samples: Sequence[Sample],
    encoder: Embedder,
    options: NormalizeOptions,
    *,
    batch_size: int,
    advance: Callable[[int], object] = lambda n: None,
) -> EmbedPass:
    embeddings = np.zeros((len(samples), encoder.embed_dim), np.float32)
    ok = np.zeros(len(samples), bool)
    result = EmbedPass(embeddings, ok, [], [], [])
    for start in range(0, len(samples), batch_size):
        batch = samples[start : start + batch_size]
        images, rows = [], []
        for row, sample in enumerate(batch, start):
            image = _normalized(sample, options, result)
            if image is not None:
                images.append(image)
                rows.append(row)
        if images:
            began = time.perf_counter()
            vectors = encoder.embed_images(images, batch_size=len(images))
            result.embed_ms.append((time.perf_counter() - began) * 1000 / len(images))
            embeddings[rows] = vectors
            ok[rows] = True
        advance(len(batch))
    return result


def _normalized(sample: Sample, options: NormalizeOptions, result: EmbedPass) -> np.ndarray | None:
    value = sample.load()  # decoding / rendering is the dataset's cost, not the app's: not timed
    began = time.perf_counter()
    try:
        sketch = normalize(value, options)
    except (EmptySketch, BadImage) as error:
        result.failures.append(f"{sample.source}: {error}")
        return None
    result.normalize_ms.append((time.perf_counter() - began) * 1000)
    return sketch.model_image


# -- metrics ------------------------------------------------------------------------------------------


def rank_concepts(bank: ConceptBank, embeddings: np.ndarray, depth: int) -> tuple[np.ndarray, list[float]]:
    """Concept indices best first, `depth` per sketch, and the scoring time per sketch.

    Ranked by probability with the cosine breaking ties: float32 sigmoids saturate, and a tie at 1.0 or 0.0
    must not decide whether the right label is "in the top 5".
    """
    ranked = np.zeros((len(embeddings), depth), np.int64)
    times = []
    for row, embedding in enumerate(embeddings):
        began = time.perf_counter()
        probabilities, cosines = bank.scores_all(embedding)
        order = np.lexsort((-np.asarray(cosines, np.float64), -np.asarray(probabilities, np.float64)))
        times.append((time.perf_counter() - began) * 1000)
        ranked[row] = order[:depth]
    return ranked, times


def hits(ranked: np.ndarray, truth: np.ndarray, k: int, ok: np.ndarray | None = None) -> np.ndarray:
    """Per sketch: is the true concept among the first k? A sketch that failed to normalize is a miss."""
    found = (ranked[:, :k] == truth[:, None]).any(axis=1)
    return found if ok is None else found & ok


def accuracies(
    ranked: np.ndarray, truth: np.ndarray, ks: Sequence[int], ok: np.ndarray | None = None
) -> dict:
    return {f"top{k}": _mean(hits(ranked, truth, k, ok)) for k in ks}


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def breakdown(
    ranked: np.ndarray, truth: np.ndarray, keys: Sequence[str], ks: Sequence[int], name: str
) -> list[dict]:
    """Accuracy per key (a concept group or a label), largest first, ties by name."""
    rows = []
    keys_array = np.asarray(keys, dtype=object)
    for key in sorted(set(keys)):
        mask = keys_array == key
        rows.append({name: key, "n": int(mask.sum()), **accuracies(ranked[mask], truth[mask], ks)})
    return sorted(rows, key=lambda row: (-row["n"], row[name]))


def confusions(ranked: np.ndarray, truth: np.ndarray, labels: Sequence[str], limit: int) -> list[dict]:
    """The most frequent (drawn, taken for) top-1 mistakes, with the share of that label's sketches."""
    drawn_counts = Counter(truth.tolist())
    mistakes = Counter((int(t), int(p)) for t, p in zip(truth, ranked[:, 0], strict=True) if int(t) != int(p))
    ordered = sorted(mistakes.items(), key=lambda item: (-item[1], labels[item[0][0]], labels[item[0][1]]))
    return [
        {"drawn": labels[t], "taken_for": labels[p], "count": n, "share": n / drawn_counts[t]}
        for (t, p), n in ordered[:limit]
    ]


def agreement(ranked: np.ndarray, reference: np.ndarray, ok: np.ndarray) -> dict:
    """How closely a precision reproduces fp32's answers: same top-1, and the overlap of the top-5 sets."""
    depth = min(AGREEMENT_DEPTH, ranked.shape[1])
    overlaps = [len(set(a[:depth]) & set(b[:depth])) / depth for a, b in zip(ranked, reference, strict=True)]
    return {
        "top1_agreement": _mean(ranked[ok, 0] == reference[ok, 0]),
        "top5_agreement": _mean(np.asarray(overlaps)[ok]),
    }


def mean_cosine(embeddings: np.ndarray, reference: np.ndarray, ok: np.ndarray) -> float:
    """Rows are unit vectors, so the row-wise dot product is the cosine."""
    return _mean(np.sum(embeddings[ok] * reference[ok], axis=1))


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


# -- the local search ---------------------------------------------------------------------------------


def gallery_label(relative_path: str) -> str | None:
    """An image's label is its top-level sub-folder; images at the gallery's root have none (distractors)."""
    parts = Path(relative_path).parts
    return label_key(parts[0]) if len(parts) > 1 else None


class Searchable(Protocol):
    """What recall needs from a gallery index (`gallery.GalleryIndex` is one)."""

    paths: list[str]

    def nearest(self, image_embedding: np.ndarray, *, k: int) -> list[tuple[str, float]]: ...


class Gallery(Protocol):
    """A labelled image folder, searched with each precision's encoder (LocalGallery, or a fake in tests)."""

    def index_for(self, encoder: Embedder, *, baseline: bool) -> Searchable: ...


def gallery_recall(
    embeddings: np.ndarray, labels: Sequence[str], index: Searchable, ks: Sequence[int]
) -> dict:
    """recall@K: the share of query sketches with at least one same-label image among the first K results.

    Only queries whose label the gallery holds count (the others could never hit); they are reported.
    """
    available = {gallery_label(path) for path in index.paths} - {None}
    depth = max(ks)
    found: dict[int, list[bool]] = {k: [] for k in ks}
    for embedding, label in zip(embeddings, labels, strict=True):
        key = label_key(label)
        if key not in available:
            continue
        retrieved = [gallery_label(path) for path, _ in index.nearest(embedding, k=depth)]
        for k in ks:
            found[k].append(key in retrieved[:k])
    queries = len(found[depth])
    return {
        "images": len(index.paths),
        "queries": queries,
        "queries_without_label_in_gallery": len(labels) - queries,
        **{f"recall@{k}": _mean(np.asarray(found[k], bool)) for k in ks},
    }


@dataclass
class LocalGallery:
    """The local search backend's own index and search code, on a labelled folder."""

    folder: Path
    batch_size: int = 16
    show_progress: bool = False
    _paths: list[str] | None = None

    def index_for(self, encoder: Embedder, *, baseline: bool) -> Searchable:
        """The baseline uses (and updates) the folder's on-disk index, exactly what the app searches. Other
        precisions embed the same images in memory: the folder holds one index, and rebuilding it for each
        precision would leave it built for the wrong model afterwards."""
        from outlyne.search.galleries.folder import GalleryIndex, index_folder

        if baseline or self._paths is None:
            index_folder(self.folder, encoder, batch_size=self.batch_size, progress=self.show_progress)
            index = GalleryIndex.load(self.folder, encoder.identity)
            self._paths = index.paths
            return index
        return GalleryIndex(self.folder, self._paths, self._embed(encoder, self._paths))

    def _embed(self, encoder: Embedder, paths: list[str]) -> np.ndarray:
        from outlyne.search.galleries.folder import open_image_file

        rows = []
        for start in range(0, len(paths), self.batch_size):
            images = [
                open_image_file(self.folder / path)[0] for path in paths[start : start + self.batch_size]
            ]
            rows.append(np.asarray(encoder.embed_images(images, batch_size=len(images)), np.float32))
        return np.concatenate(rows) if rows else np.zeros((0, encoder.embed_dim), np.float32)


# -- the run ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalOptions:
    variants: tuple[str, ...] = VARIANT_KINDS
    ks: tuple[int, ...] = (1, 5)
    precision: str = DEFAULT_PRECISION
    """The baseline: what the app runs. Normalization and template variants use it too."""
    batch_size: int = 16
    templates: tuple[str, ...] = PROMPT_TEMPLATES
    """The app's prompt ensemble (a concept file may bring its own)."""
    confusions: int = 10
    show_progress: bool = True
    model: str | None = None
    """The model's name for the reports (OUTLYNE_MODEL); the encoder identity when not given."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.variants) - set(VARIANT_KINDS))
        if unknown:
            raise OutlyneError(
                f"Unknown variant {', '.join(unknown)}: choose from {', '.join(VARIANT_KINDS)}."
            )
        if not self.ks or min(self.ks) < 1:
            raise OutlyneError("Top-K values must be positive integers.")
        if self.precision not in PRECISIONS:
            raise OutlyneError(f"Precision {self.precision!r} is not one of {', '.join(PRECISIONS)}.")
        if self.batch_size < 1:
            raise OutlyneError("The batch size must be at least 1.")

    @property
    def depth(self) -> int:
        """How many concepts to rank per sketch: enough for every K and for the top-5 agreement."""
        return max(*self.ks, AGREEMENT_DEPTH)


def bank_factory(
    concepts: Sequence[Concept], cache_dir: Path, progress: Callable | None = None
) -> BankFactory:
    """Banks are cached on disk per (model, precision, prompts), so each template set is embedded once."""

    def build(encoder: Embedder, templates: Sequence[str]) -> ConceptBank:
        return ConceptBank.build(
            encoder, list(concepts), cache_dir=cache_dir, templates=tuple(templates), progress=progress
        )

    return build


@dataclass
class Measured:
    """One embedding variant's answers on the evaluated sketches."""

    embeddings: np.ndarray
    ranked: np.ndarray
    ok: np.ndarray
    embed_ms: float


class _Run:
    """One evaluation: the sketches measured, their true concepts, the options and the progress bar."""

    def __init__(self, dataset: Dataset, concepts: Sequence[Concept], options: EvalOptions):
        self.options = options
        self.bar: Any = None  # the tqdm bar, opened once the baseline model is loaded
        self.labels = [c.label for c in concepts]
        self.groups = [c.group for c in concepts]
        index = {label_key(c.label): i for i, c in enumerate(concepts)}
        self.read = len(dataset.samples)
        self.problems = list(dataset.problems)
        unknown = Counter(label_key(s.label) for s in dataset.samples if label_key(s.label) not in index)
        self.problems.extend(
            f"label {label!r} is not in the concept bank: {n} sketch(es) skipped"
            for label, n in sorted(unknown.items())
        )
        self.skipped_unknown = sum(unknown.values())
        self.samples = [s for s in dataset.samples if label_key(s.label) in index]
        if not self.samples:
            raise OutlyneError(
                "No sketch has a label that is a concept in the concept bank: nothing to measure."
            )
        self.truth = np.array([index[label_key(s.label)] for s in self.samples], np.int64)

    def measure(self, encoder: Embedder, bank: ConceptBank, normalize_options: NormalizeOptions, name: str):
        self.bar.set_description(name)
        self.bar.unpause()  # loading a model or a concept bank is not sketches per second
        result = embed_pass(
            self.samples,
            encoder,
            normalize_options,
            batch_size=self.options.batch_size,
            advance=self.bar.update,
        )
        ranked, score_ms = rank_concepts(bank, result.embeddings, self.options.depth)
        return result, ranked, score_ms

    def keep(self, mask: np.ndarray) -> None:
        """Drop the sketches the baseline cannot use, so that every variant is measured on the same set."""
        self.samples = [s for s, keep in zip(self.samples, mask, strict=True) if keep]
        self.truth = self.truth[mask]

    def accuracies(self, ranked: np.ndarray, ok: np.ndarray | None = None) -> dict[str, float]:
        return accuracies(ranked, self.truth, self.options.ks, ok)


def evaluate(
    dataset: Dataset,
    concepts: Sequence[Concept],
    encoder_for: EncoderFactory,
    bank_for: BankFactory,
    options: EvalOptions | None = None,
    *,
    gallery: Gallery | None = None,
) -> dict[str, Any]:
    """Measure the baseline and every requested variant; returns the JSON-ready report."""
    from tqdm import tqdm

    options = options or EvalOptions()
    passes = 1 + len(NORMALIZATION_STEPS) * ("normalization" in options.variants)
    passes += (len(PRECISIONS) - 1) * ("precision" in options.variants)
    run = _Run(dataset, concepts, options)
    encoder = encoder_for(options.precision)
    bank = bank_for(encoder, options.templates)
    total = passes * len(run.samples)
    with tqdm(total=total, file=sys.stderr, unit="sketch", disable=not options.show_progress) as run.bar:
        baseline, report = _measure_baseline(run, encoder, bank, passes)

        if gallery:
            report["gallery"] = _gallery_report(run, baseline, gallery.index_for(encoder, baseline=True))
        variants: dict[str, list[dict]] = {}
        if "normalization" in options.variants:
            variants["normalization"] = _normalization_variants(run, encoder, bank, report["overall"])
        if "templates" in options.variants:
            variants["templates"] = _template_variants(run, encoder, bank_for, baseline)
        if "precision" in options.variants:
            variants["precision"] = _precision_variants(
                run, encoder_for, bank_for, baseline, gallery, report.get("gallery")
            )
        report["variants"] = variants
        report["problems"] = run.problems
    return report


def _measure_baseline(
    run: _Run, encoder: Embedder, bank: ConceptBank, passes: int
) -> tuple[Measured, dict[str, Any]]:
    """The app as configured. Sketches it cannot normalize (no ink, unreadable) are skipped from here on."""
    result, ranked, score_ms = run.measure(encoder, bank, NormalizeOptions(), run.options.precision)
    if not result.ok.any():
        raise OutlyneError("No sketch could be normalized: " + "; ".join(result.failures[:3]))
    run.problems.extend(f"{failure} (skipped)" for failure in result.failures)
    run.bar.total -= (passes - 1) * len(result.failures)
    run.keep(result.ok)
    embed_ms = _median(result.embed_ms)
    baseline = Measured(
        result.embeddings[result.ok], ranked[result.ok], np.ones(len(run.samples), bool), embed_ms
    )
    return baseline, _baseline_report(run, encoder, baseline, result, score_ms)


def _baseline_report(
    run: _Run, encoder: Embedder, baseline: Measured, result: EmbedPass, score_ms: list[float]
) -> dict[str, Any]:
    ks, truth, ranked = run.options.ks, run.truth, baseline.ranked
    latency = {
        "normalize": _median(result.normalize_ms),
        "embed": baseline.embed_ms,
        "score": _median(score_ms),
    }
    latency["total"] = sum(latency.values())
    return {
        "model": run.options.model or encoder.identity,
        "encoder": encoder.identity,
        "precision": run.options.precision,
        "batch_size": run.options.batch_size,
        "ks": list(ks),
        "templates": list(run.options.templates),
        "dataset": {
            "read": run.read,
            "evaluated": len(truth),
            "labels": len(set(truth.tolist())),
            "skipped": run.read - len(truth),
            "skipped_unknown_label": run.skipped_unknown,
        },
        "overall": {"n": len(truth), **run.accuracies(ranked)},
        "groups": breakdown(ranked, truth, [run.groups[t] for t in truth], ks, "group"),
        "labels": breakdown(ranked, truth, [run.labels[t] for t in truth], ks, "label"),
        "confusions": confusions(ranked, truth, run.labels, run.options.confusions),
        "latency_ms": latency,
    }


def _normalization_variants(run: _Run, encoder: Embedder, bank: ConceptBank, overall: dict) -> list[dict]:
    """Each step off in turn, everything else as the app runs it: what does that step buy?"""
    rows = [{"variant": "all steps (baseline)", **_accuracy_only(overall), "failed": 0}]
    for step in NORMALIZATION_STEPS:
        options = dataclasses.replace(NormalizeOptions(), **{step: False})
        result, ranked, _ = run.measure(encoder, bank, options, f"no {step}")
        # A sketch that no longer normalizes (say, empty without polarity) counts as a miss, not a skip.
        rows.append(
            {"variant": f"no {step}", **run.accuracies(ranked, result.ok), "failed": len(result.failures)}
        )
    return rows


def _template_variants(run: _Run, encoder: Embedder, bank_for: BankFactory, baseline: Measured) -> list[dict]:
    """Same sketch embeddings, only the text side varies: the ensemble against each template alone."""
    templates = run.options.templates
    rows = [{"templates": f"ensemble of {len(templates)}", **run.accuracies(baseline.ranked)}]
    for template in templates:
        ranked, _ = rank_concepts(bank_for(encoder, (template,)), baseline.embeddings, run.options.depth)
        rows.append({"templates": template, **run.accuracies(ranked)})
    return rows


def _precision_variants(
    run: _Run,
    encoder_for: EncoderFactory,
    bank_for: BankFactory,
    baseline: Measured,
    gallery: Gallery | None,
    baseline_gallery: dict | None,
) -> list[dict]:
    """Every precision on the same sketches, then each compared with fp32 (seed 004's question)."""
    measured: dict[str, Measured] = {}
    rows: dict[str, dict] = {}
    for precision in PRECISIONS:
        rows[precision] = {"precision": precision, "baseline": precision == run.options.precision}
        if precision == run.options.precision:
            measured[precision] = baseline
            if baseline_gallery is not None:
                rows[precision]["gallery"] = baseline_gallery
            continue
        try:
            measured[precision] = _measure_precision(
                run, encoder_for, bank_for, precision, gallery, rows[precision]
            )
        except OutlyneError as error:  # say int8-static calibration fails: report it, measure the rest
            run.problems.append(f"precision {precision} skipped: {error}")
            rows[precision]["error"] = str(error)
            run.bar.update(len(run.samples))
    reference = measured.get(REFERENCE_PRECISION)
    for precision, m in measured.items():
        row = rows[precision]
        row.update(run.accuracies(m.ranked, m.ok), embed_ms=m.embed_ms)
        if reference is not None:
            both = m.ok & reference.ok
            row.update(agreement(m.ranked, reference.ranked, both))
            row["mean_cosine"] = mean_cosine(m.embeddings, reference.embeddings, both)
    return list(rows.values())


def _measure_precision(
    run: _Run,
    encoder_for: EncoderFactory,
    bank_for: BankFactory,
    precision: str,
    gallery: Gallery | None,
    row: dict,
) -> Measured:
    """One more model, loaded for this pass only (and freed on return): memory holds two at most."""
    encoder = encoder_for(precision)
    bank = bank_for(encoder, run.options.templates)  # text embeddings from this encoder too, as the app does
    result, ranked, _ = run.measure(encoder, bank, NormalizeOptions(), precision)
    measured = Measured(result.embeddings, ranked, result.ok, _median(result.embed_ms))
    if gallery is not None:
        row["gallery"] = _gallery_report(run, measured, gallery.index_for(encoder, baseline=False))
    return measured


def _gallery_report(run: _Run, measured: Measured, index: Searchable) -> dict:
    labels = [sample.label for sample, ok in zip(run.samples, measured.ok, strict=True) if ok]
    return gallery_recall(measured.embeddings[measured.ok], labels, index, run.options.ks)


def _accuracy_only(row: dict) -> dict:
    return {key: value for key, value in row.items() if key.startswith("top")}


# -- reports ------------------------------------------------------------------------------------------


def to_json(report: dict[str, Any]) -> str:
    """Strict JSON: a metric with nothing to measure (NaN) becomes null rather than an invalid token."""
    return json.dumps(_finite(report), indent=2, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def render_markdown(report: dict[str, Any]) -> str:
    """Tables to paste into the README, built from the JSON report so both always say the same thing."""
    sections = [
        _md_accuracy(report),
        _md_confusions(report),
        _md_latency(report),
        _md_normalization(report),
        _md_templates(report),
        _md_precision(report),
        _md_gallery(report),
        _md_problems(report),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value * 100:.1f}%"


def _delta(value: float | None, reference: float | None) -> str:
    if value is None or reference is None or not (math.isfinite(value) and math.isfinite(reference)):
        return "–"
    return f"{(value - reference) * 100:+.1f}"


def _ms(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.1f} ms" if value >= 1 else f"{value:.3f} ms"  # scoring takes microseconds


def _num(value: float | None, digits: int = 4) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _top_headers(report: dict) -> list[str]:
    return [f"top-{k}" for k in report["ks"]]


def _tops(report: dict, row: dict) -> list[str]:
    return [_pct(row.get(f"top{k}")) for k in report["ks"]]


def _md_accuracy(report: dict) -> str:
    data = report["dataset"]
    title = (
        f"### Zero-shot accuracy\n\n`{report['model']}` at {report['precision']}, "
        f"{data['evaluated']} sketches of {data['labels']} labels, "
        f"prompt ensemble of {len(report['templates'])} templates."
    )
    rows = [["**all**", report["overall"]["n"], *_tops(report, report["overall"])]]
    rows += [[group["group"], group["n"], *_tops(report, group)] for group in report["groups"]]
    return title + "\n\n" + _table(["concept group", "sketches", *_top_headers(report)], rows)


def _md_confusions(report: dict) -> str:
    if not report["confusions"]:
        return ""
    rows = [[c["drawn"], c["taken_for"], c["count"], _pct(c["share"])] for c in report["confusions"]]
    return "### Most confused labels (top-1)\n\n" + _table(
        ["drawn", "taken for", "sketches", "share of drawn"], rows
    )


def _md_latency(report: dict) -> str:
    latency = report["latency_ms"]
    title = (
        f"### Latency per sketch (median, {report['precision']}, embedded in batches of "
        f"{report['batch_size']})"
    )
    stages = ("normalize", "embed", "score", "total")
    return title + "\n\n" + _table(stages, [[_ms(latency[stage]) for stage in stages]])


def _md_normalization(report: dict) -> str:
    rows = report["variants"].get("normalization")
    if not rows:
        return ""
    base = rows[0]
    body = []
    for row in rows:
        cells = [row["variant"]]
        for k in report["ks"]:
            delta = _delta(row.get(f"top{k}"), base.get(f"top{k}")) if row is not base else ""
            cells += [_pct(row.get(f"top{k}")), delta]
        body.append([*cells, row["failed"]])
    headers = ["normalization"]
    for k in report["ks"]:
        headers += [f"top-{k}", "Δ pts"]
    return "### Normalization steps, each switched off in turn\n\n" + _table([*headers, "failed"], body)


def _md_templates(report: dict) -> str:
    rows = report["variants"].get("templates")
    if not rows:
        return ""
    body = [
        [f"`{row['templates']}`" if i else row["templates"], *_tops(report, row)]
        for i, row in enumerate(rows)
    ]
    return "### Prompt templates\n\n" + _table(["templates", *_top_headers(report)], body)


def _md_precision(report: dict) -> str:
    rows = report["variants"].get("precision")
    if not rows:
        return ""
    with_gallery = any("gallery" in row for row in rows)
    headers = [
        "precision",
        *_top_headers(report),
        "top-1 agreement",
        "top-5 agreement",
        "mean cosine",
        "embed",
    ]
    if with_gallery:
        headers += [f"recall@{k}" for k in report["ks"]]
    body = []
    for row in rows:
        name = row["precision"] + (" (baseline)" if row["baseline"] else "")
        if "error" in row:
            body.append([name, f"failed: {row['error']}", *[""] * (len(headers) - 2)])
            continue
        cells = [name, *_tops(report, row), _pct(row.get("top1_agreement")), _pct(row.get("top5_agreement"))]
        cells += [_num(row.get("mean_cosine")), _ms(row.get("embed_ms"))]
        if with_gallery:
            cells += [_pct(row.get("gallery", {}).get(f"recall@{k}")) for k in report["ks"]]
        body.append(cells)
    return f"### Precision, compared with {REFERENCE_PRECISION}\n\n" + _table(headers, body)


def _md_gallery(report: dict) -> str:
    gallery = report.get("gallery")
    if not gallery:
        return ""
    title = "### Local search (a sketch hits when a result has its label)"
    headers = [
        "queries",
        *[f"recall@{k}" for k in report["ks"]],
        "queries without their label in the gallery",
    ]
    row = [gallery["queries"], *[_pct(gallery[f"recall@{k}"]) for k in report["ks"]]]
    return title + "\n\n" + _table(headers, [[*row, gallery["queries_without_label_in_gallery"]]])


def _md_problems(report: dict, shown: int = 10) -> str:
    problems = report.get("problems") or []
    if not problems:
        return ""
    lines = [f"- {problem}" for problem in problems[:shown]]
    if len(problems) > shown:
        lines.append(f"- ... and {len(problems) - shown} more (see the JSON report)")
    return f"### Skipped ({len(problems)})\n\n" + "\n".join(lines)
