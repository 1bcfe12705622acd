"""`python -m outlyne eval`: dataset loading, exact metrics on scripted embeddings, reports, the CLI."""

from __future__ import annotations

import gzip
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from outlyne.cli import main
from outlyne.concepts.file import PROMPT_TEMPLATES, Concept
from outlyne.config import PRECISIONS
from outlyne.errors import OutlyneError
from outlyne.model.embedder import l2_normalize
from outlyne.search.galleries.folder import GalleryIndex
from outlyne.sketch.normalize import normalize
from outlyne_dev.evaluation import (
    NORMALIZATION_STEPS,
    Dataset,
    EvalOptions,
    LocalGallery,
    Sample,
    bank_factory,
    evaluate,
    gallery_recall,
    label_key,
    load_dataset,
    render_markdown,
    to_json,
)
from outlyne_dev.quickdraw import render_strokes
from tests.support.fakes import FakeEncoder

# Seven concepts, so that "in the top 5" is not trivially true.
CONCEPTS = (
    Concept("cat", "animal"),
    Concept("dog", "animal"),
    Concept("sun", "sky"),
    Concept("moon", "sky"),
    Concept("tree", "plant"),
    Concept("house", "building"),
    Concept("car", "vehicle"),
)
LABELS = [c.label for c in CONCEPTS]

# Scripted sketch embeddings (before L2 normalization), one component per concept in CONCEPTS order.
SCRIPT = {
    "fp32": [
        [7, 6, 5, 4, 3, 2, 1],  # a cat, ranked cat > dog > ...: top-1 right
        [6, 7, 5, 4, 3, 2, 1],  # a dog: top-1 right
        [7, 5, 6, 4, 3, 2, 1],  # a sun taken for a cat, sun 2nd: top-5 right only
        [6, 7, 5, 1, 4, 3, 2],  # a moon taken for a dog, moon 7th: wrong both ways
    ],
    "int8": [
        [7, 6, 5, 4, 3, 2, 1],
        [7, 6, 5, 4, 3, 2, 1],  # the dog now reads as a cat (top-1 differs from fp32; same top-5 set)
        [7, 5, 6, 4, 3, 2, 1],
        [6, 7, 5, 1, 2, 3, 4],  # car replaces tree in the top 5: 4 of fp32's 5 kept
    ],
}
SCRIPT["int8-static"] = SCRIPT["fp32"]
TRUTH = ["cat", "dog", "sun", "moon"]


class ScriptedEncoder:
    """Texts -> the basis vector of the concept named in the prompt; images -> the scripted rows, in turn.

    Every embedding pass sends the same sketches in the same order, so cycling through the script gives
    each sketch its scripted vector in every pass, and the right answers are known by construction.
    """

    lowercase_prompts = True
    logit_scale = math.log(10.0)
    logit_bias = -5.0

    def __init__(self, rows: Sequence[Sequence[float]], identity: str = "scripted") -> None:
        self.rows = l2_normalize(np.asarray(rows, np.float32))
        self.embed_dim = self.rows.shape[1]
        self.identity = identity
        self.cursor = 0

    def embed_images(self, images, batch_size=None):  # type: ignore[no-untyped-def]
        picked = [(self.cursor + i) % len(self.rows) for i in range(len(images))]
        self.cursor += len(images)
        return self.rows[picked]

    def embed_texts(self, texts):  # type: ignore[no-untyped-def]
        out = np.zeros((len(texts), self.embed_dim), np.float32)
        for row, text in enumerate(texts):
            words = text.replace(".", " ").split()
            out[row, [LABELS.index(word) for word in words if word in LABELS]] = 1.0
        return out


def scripted_factory(made: list[str] | None = None):  # type: ignore[no-untyped-def]
    def encoder_for(precision: str) -> ScriptedEncoder:
        if made is not None:
            made.append(precision)
        return ScriptedEncoder(SCRIPT[precision], identity=f"scripted-{precision}")

    return encoder_for


def line_sketch(seed: int) -> np.ndarray:
    """A drawing with ink (normalize needs some); its content does not matter to ScriptedEncoder."""
    rng = np.random.default_rng(seed)
    return render_strokes([(rng.integers(0, 256, 4).tolist(), rng.integers(0, 256, 4).tolist())], size=128)


def samples_for(labels: Sequence[str]) -> list[Sample]:
    return [Sample(label, f"s{i}", lambda i=i: line_sketch(i)) for i, label in enumerate(labels)]


def run_eval(tmp_path: Path, dataset: Dataset, encoder_for, **options):  # type: ignore[no-untyped-def]
    gallery = options.pop("gallery", None)
    options.setdefault("show_progress", False)
    bank_for = bank_factory(CONCEPTS, tmp_path / "cache")
    return evaluate(dataset, CONCEPTS, encoder_for, bank_for, EvalOptions(**options), gallery=gallery)


# -- exact metrics ------------------------------------------------------------------------------------


def test_accuracies_groups_and_confusions_equal_the_scripted_answers(tmp_path: Path) -> None:
    report = run_eval(
        tmp_path, Dataset(samples_for(TRUTH)), scripted_factory(), variants=(), precision="fp32"
    )

    assert report["overall"] == {"n": 4, "top1": 0.5, "top5": 0.75}
    groups = {row["group"]: row for row in report["groups"]}
    assert groups["animal"] == {"group": "animal", "n": 2, "top1": 1.0, "top5": 1.0}
    assert groups["sky"] == {"group": "sky", "n": 2, "top1": 0.0, "top5": 0.5}
    labels = {row["label"]: (row["top1"], row["top5"]) for row in report["labels"]}
    assert labels == {"cat": (1.0, 1.0), "dog": (1.0, 1.0), "sun": (0.0, 1.0), "moon": (0.0, 0.0)}
    assert report["confusions"] == [
        {"drawn": "moon", "taken_for": "dog", "count": 1, "share": 1.0},
        {"drawn": "sun", "taken_for": "cat", "count": 1, "share": 1.0},
    ]
    assert report["dataset"]["evaluated"] == 4 and report["dataset"]["skipped"] == 0
    assert report["variants"] == {} and report["problems"] == []
    assert set(report["latency_ms"]) == {"normalize", "embed", "score", "total"}


def test_two_of_three_right_is_exactly_two_thirds(tmp_path: Path) -> None:
    rows = SCRIPT["fp32"][:3]
    encoder_for = lambda precision: ScriptedEncoder(rows)  # noqa: E731
    report = run_eval(tmp_path, Dataset(samples_for(TRUTH[:3])), encoder_for, variants=(), precision="fp32")
    assert report["overall"]["top1"] == 2 / 3
    assert report["overall"]["top5"] == 1.0
    assert [(c["drawn"], c["taken_for"]) for c in report["confusions"]] == [("sun", "cat")]


def test_top_k_values_are_configurable(tmp_path: Path) -> None:
    report = run_eval(tmp_path, Dataset(samples_for(TRUTH)), scripted_factory(), variants=(), ks=(2, 7))
    # int8 baseline by default: dog read as cat; sun 2nd; moon 7th of 7.
    assert report["overall"] == {"n": 4, "top2": 0.75, "top7": 1.0}


def test_each_precision_is_compared_with_fp32(tmp_path: Path) -> None:
    made: list[str] = []
    report = run_eval(
        tmp_path,
        Dataset(samples_for(TRUTH)),
        scripted_factory(made),
        variants=("precision",),
        precision="int8",
    )
    assert sorted(made) == sorted(PRECISIONS)  # one encoder per precision, the baseline reused
    rows = {row["precision"]: row for row in report["variants"]["precision"]}
    assert list(rows) == list(PRECISIONS)
    assert rows["int8"]["baseline"] and not rows["fp32"]["baseline"]
    assert (rows["fp32"]["top1"], rows["fp32"]["top5"]) == (0.5, 0.75)
    assert (rows["int8"]["top1"], rows["int8"]["top5"]) == (0.25, 0.75)
    assert report["overall"]["top1"] == 0.25  # the baseline is what the app runs: int8
    assert rows["int8"]["top1_agreement"] == 0.75
    assert rows["int8"]["top5_agreement"] == pytest.approx((1 + 1 + 1 + 4 / 5) / 4)
    assert rows["int8"]["mean_cosine"] == pytest.approx((1 + 139 / 140 + 1 + 136 / 140) / 4, abs=1e-6)
    for precision in ("fp32", "int8-static"):
        assert rows[precision]["top1_agreement"] == 1.0 and rows[precision]["top5_agreement"] == 1.0
        assert rows[precision]["mean_cosine"] == pytest.approx(1.0, abs=1e-6)


def test_a_precision_that_cannot_load_is_reported_not_fatal(tmp_path: Path) -> None:
    def encoder_for(precision: str) -> ScriptedEncoder:
        if precision == "int8-static":
            raise OutlyneError("calibration failed")
        return ScriptedEncoder(SCRIPT[precision], identity=precision)

    report = run_eval(
        tmp_path, Dataset(samples_for(TRUTH)), encoder_for, variants=("precision",), precision="int8"
    )
    rows = {row["precision"]: row for row in report["variants"]["precision"]}
    assert rows["int8-static"]["error"] == "calibration failed"
    assert rows["fp32"]["top1"] == 0.5
    assert any("int8-static" in problem for problem in report["problems"])
    assert "failed: calibration failed" in render_markdown(report)


def test_normalization_and_template_variants(tmp_path: Path) -> None:
    report = run_eval(
        tmp_path,
        Dataset(samples_for(TRUTH)),
        scripted_factory(),
        variants=("normalization", "templates"),
        precision="fp32",
    )
    normalization = report["variants"]["normalization"]
    assert [row["variant"] for row in normalization] == [
        "all steps (baseline)",
        *(f"no {step}" for step in NORMALIZATION_STEPS),
    ]
    # Scripted embeddings ignore the pixels: every variant must score exactly like the baseline.
    assert all((row["top1"], row["top5"], row["failed"]) == (0.5, 0.75, 0) for row in normalization)
    templates = report["variants"]["templates"]
    assert [row["templates"] for row in templates] == [
        f"ensemble of {len(PROMPT_TEMPLATES)}",
        *PROMPT_TEMPLATES,
    ]
    assert all((row["top1"], row["top5"]) == (0.5, 0.75) for row in templates)


# -- skipping, not failing ----------------------------------------------------------------------------


def write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def drawing(seed: int) -> list[list[list[int]]]:
    rng = np.random.default_rng(seed)
    return [[rng.integers(0, 256, 5).tolist(), rng.integers(0, 256, 5).tolist()] for _ in range(2)]


def write_ndjson(path: Path, lines: Sequence[object]) -> Path:
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_folder_dataset_labels_limits_and_stray_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for label, count in (("cat", 3), ("Alarm_Clock", 2)):
        for i in range(count):
            write_png(data / label / f"{i}.png", line_sketch(i))
    write_png(data / "stray.png", line_sketch(9))
    (data / "cat" / "notes.txt").write_text("not an image")

    dataset = load_dataset([data], limit_per_label=2)
    assert sorted((s.label, s.source) for s in dataset.samples) == [
        ("Alarm_Clock", "Alarm_Clock/0.png"),
        ("Alarm_Clock", "Alarm_Clock/1.png"),
        ("cat", "cat/0.png"),
        ("cat", "cat/1.png"),
    ]
    assert any("stray.png" in problem for problem in dataset.problems)
    assert label_key("Alarm_Clock") == label_key("alarm  clock") == "alarm clock"
    assert normalize(dataset.samples[0].load()).model_image.shape == (224, 224, 3)


def test_malformed_ndjson_lines_and_unknown_labels_are_reported_and_skipped(tmp_path: Path) -> None:
    ndjson = write_ndjson(
        tmp_path / "mixed.ndjson",
        [
            {"word": "cat", "key_id": "1", "drawing": drawing(1)},
            "this is not json",
            {"word": "dog"},
            {"word": "unicorn", "drawing": drawing(2)},
            {"word": "dog", "key_id": "2", "drawing": drawing(3)},
            {"word": "cat", "drawing": [[[1, 2], [3]]]},
            {"word": "unicorn", "drawing": drawing(4)},
        ],
    )
    blank = [Sample("cat", "blank.png", lambda: np.full((64, 64, 3), 255, np.uint8))]  # no ink at all
    dataset = load_dataset([ndjson])
    assert [s.label for s in dataset.samples] == ["cat", "unicorn", "dog", "unicorn"]
    assert len(dataset.problems) == 3 and all(p.startswith("mixed.ndjson: line ") for p in dataset.problems)

    dataset.samples.extend(blank)
    report = run_eval(tmp_path, dataset, lambda precision: FakeEncoder(identity=precision), variants=())
    assert report["dataset"] == {
        "read": 5,
        "evaluated": 2,
        "labels": 2,
        "skipped": 3,
        "skipped_unknown_label": 2,
    }
    problems = report["problems"]
    assert "label 'unicorn' is not in the concept bank: 2 sketch(es) skipped" in problems
    assert any("line 2" in p for p in problems) and any("line 3" in p for p in problems)
    assert any(p.startswith("blank.png") for p in problems)
    assert "### Skipped (5)" in render_markdown(report)


def test_nothing_to_measure_is_a_plain_error(tmp_path: Path) -> None:
    only_unknown = Dataset(samples_for(["unicorn", "dragon"]))
    with pytest.raises(OutlyneError, match="concept bank"):
        run_eval(tmp_path, only_unknown, scripted_factory(), variants=())
    with pytest.raises(OutlyneError, match="No labelled sketches"):
        load_dataset([write_ndjson(tmp_path / "bad.ndjson", ["{", "[]"])])
    with pytest.raises(OutlyneError, match="does not exist"):
        load_dataset([tmp_path / "missing"])
    with pytest.raises(OutlyneError, match="variant"):
        EvalOptions(variants=("colour",))


# -- the local search ---------------------------------------------------------------------------------


def test_gallery_recall_at_k_on_a_constructed_index(tmp_path: Path) -> None:
    index = GalleryIndex(
        tmp_path,
        ["cat/a.png", "dog/a.png", "dog/b.png", "distractor.png"],
        l2_normalize(np.array([[1, 0, 0], [0, 1, 0], [0.9, 0.1, 0], [0, 0, 1]], np.float32)),
    )
    queries = l2_normalize(
        np.array(
            [
                [1, 0, 0],  # cat: cat/a first -> hit at 1
                [0, 1, 0],  # dog: dog/a first -> hit at 1
                [0.7, 0, 0.714],  # cat: the unlabelled distractor first, cat/a second -> hit at 2
                [1, 0, 0],  # dog: cat/a first, dog/b second -> hit at 2
                [0, 1, 0],  # sun: no sun in the gallery -> not a query
                [-0.1, 0.2, 1],  # cat: distractor, dog/a -> miss at 1 and 2
            ],
            np.float32,
        )
    )
    result = gallery_recall(queries, ["cat", "dog", "cat", "Dog", "sun", "cat"], index, (1, 2))
    assert result == {
        "images": 4,
        "queries": 5,
        "queries_without_label_in_gallery": 1,
        "recall@1": 2 / 5,
        "recall@2": 4 / 5,
    }


def test_local_gallery_finds_the_same_drawing_for_every_precision(tmp_path: Path) -> None:
    """Gallery images are the sketches as the model sees them: a FakeEncoder embeds them identically."""
    samples = samples_for(["cat", "dog", "sun", "cat"])
    gallery = tmp_path / "gallery"
    for sample in samples:
        write_png(gallery / sample.label / f"{sample.source}.png", normalize(sample.load()).model_image)
    write_png(gallery / "loose.png", line_sketch(99))

    report = run_eval(
        tmp_path,
        Dataset(samples),
        lambda precision: FakeEncoder(identity=f"fake-{precision}"),
        variants=("precision",),
        gallery=LocalGallery(gallery),
        precision="int8",
    )
    expected = {
        "images": 5,
        "queries": 4,
        "queries_without_label_in_gallery": 0,
        "recall@1": 1.0,
        "recall@5": 1.0,
    }
    assert report["gallery"] == expected
    assert all(row["gallery"] == expected for row in report["variants"]["precision"])
    # The folder's own index stays built for the baseline encoder (what the app searches).
    assert len(GalleryIndex.load(gallery, "fake-int8")) == 5
    assert "recall@1" in render_markdown(report)


# -- reports ------------------------------------------------------------------------------------------


def test_reports_are_strict_json_and_pasteable_markdown(tmp_path: Path) -> None:
    report = run_eval(tmp_path, Dataset(samples_for(TRUTH)), scripted_factory(), precision="fp32")
    report["latency_ms"]["score"] = float("nan")  # nothing measured must read as null / a dash
    data = json.loads(to_json(report))
    assert data["latency_ms"]["score"] is None
    assert data["overall"]["top1"] == 0.5
    markdown = render_markdown(report)
    for heading in ("Zero-shot accuracy", "Most confused", "Latency", "Normalization", "Prompt templates"):
        assert f"### {heading}" in markdown
    assert "### Precision, compared with fp32" in markdown
    assert "| **all** | 4 | 50.0% | 75.0% |" in markdown
    assert "| moon | dog | 1 | 100.0% |" in markdown
    tables = [line for line in markdown.splitlines() if line.startswith("|")]
    assert all(line.endswith("|") for line in tables)


# -- the command, end to end on the tiny random checkpoint --------------------------------------------


@pytest.fixture
def tiny_env(
    tiny_checkpoint: Path, encoder_cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The command configured as a user would, on the tiny checkpoint; the session's exports are reused."""
    concepts = {"version": 1, "concepts": [{"label": c.label, "group": c.group} for c in CONCEPTS]}
    (tmp_path / "concepts.json").write_text(json.dumps(concepts))
    monkeypatch.setenv("OUTLYNE_MODEL", str(tiny_checkpoint))
    monkeypatch.setenv("OUTLYNE_CONCEPTS", str(tmp_path / "concepts.json"))
    monkeypatch.setenv("OUTLYNE_CACHE_DIR", str(encoder_cache_dir))
    monkeypatch.delenv("OUTLYNE_PRECISION", raising=False)
    return tmp_path


def test_command_prints_markdown_or_json_to_stdout(
    tiny_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Argument handling only: a FakeEncoder stands in for the OpenVINO model here."""
    import outlyne.model.encoder

    monkeypatch.setattr(outlyne.model.encoder, "load_encoder", lambda config, progress=None: FakeEncoder())
    folder = tiny_env / "sketches"
    for i, label in enumerate(("cat", "dog", "sun")):
        write_png(folder / label / "0.png", line_sketch(i))

    assert main(["eval", str(folder), "--variants", "none", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("### Zero-shot accuracy") and "### Normalization" not in out
    assert "top-1" in err and "on 3 sketches" in err

    argv = ["eval", str(folder), "--variants", "templates", "--top-k", "3", "--json", "-", "--no-progress"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ks"] == [3] and set(report["overall"]) == {"n", "top3"}
    assert list(report["variants"]) == ["templates"]
    assert report["model"] == os.environ["OUTLYNE_MODEL"] and report["encoder"] == "fake-encoder"

    assert main(["eval", str(tiny_env / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_command_runs_every_variant_on_a_folder_and_on_ndjson(tiny_env: Path) -> None:
    folder = tiny_env / "sketches"
    for number, label in enumerate(("cat", "sun", "unicorn")):
        for i in range(2):  # a fixed seed per file (hash() of a str differs between processes)
            write_png(folder / label / f"{i}.png", line_sketch(100 * number + i))
    ndjson = write_ndjson(
        tiny_env / "house.ndjson.gz",
        [{"word": "house", "drawing": drawing(i)} for i in range(3)] + ["{broken"],
    )
    gallery = tiny_env / "gallery"
    for label in ("cat", "house"):
        write_png(gallery / label / "0.png", line_sketch(7))

    out_json, out_md = tiny_env / "out" / "report.json", tiny_env / "out" / "report.md"
    argv = ["eval", str(folder), str(ndjson), "--limit-per-label", "2", "--gallery", str(gallery)]
    code = main(
        [*argv, "--json", str(out_json), "--markdown", str(out_md), "--no-progress", "--batch-size", "3"]
    )
    assert code == 0

    report = json.loads(out_json.read_text())
    assert report["dataset"]["evaluated"] == 6  # cat 2, sun 2, house 2 (limit); unicorn skipped
    assert report["dataset"]["skipped_unknown_label"] == 2
    assert any("line 4" in problem for problem in report["problems"])
    assert set(report["variants"]) == {"normalization", "templates", "precision"}
    precision_rows = report["variants"]["precision"]
    assert [row["precision"] for row in precision_rows] == list(PRECISIONS)
    for row in precision_rows:
        assert "error" not in row, row
        assert 0.0 <= row["top1"] <= row["top5"] <= 1.0
        assert -1.0 <= row["mean_cosine"] <= 1.0 + 1e-6
        assert row["gallery"]["queries"] == 4  # cat and house sketches
    assert report["gallery"]["images"] == 2
    markdown = out_md.read_text()
    assert "### Zero-shot accuracy" in markdown and "### Local search" in markdown
