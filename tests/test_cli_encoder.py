"""`python -m outlyne export` and `embed`: JSON shapes, progress on stderr, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from outlyne.cli import main
from outlyne.model.calibration import sketch_images

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def warm_env(monkeypatch, tiny_encoder, tiny_checkpoint, encoder_cache_dir) -> None:
    """OUTLYNE_* pointing at the session's tiny checkpoint and its already exported fp32 cache."""
    for key in [key for key in os.environ if key.startswith("OUTLYNE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("OUTLYNE_MODEL", str(tiny_checkpoint))
    monkeypatch.setenv("OUTLYNE_CACHE_DIR", str(encoder_cache_dir))
    monkeypatch.setenv("OUTLYNE_PRECISION", "fp32")


@pytest.fixture
def sketch_files(tmp_path: Path) -> list[Path]:
    paths = []
    for index, image in enumerate(sketch_images(2, size=128, seed=21)):
        path = tmp_path / f"sketch{index}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def test_export_json_reports_a_cached_export(warm_env, tiny_encoder, capsys) -> None:
    assert main(["export", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (item,) = out["exports"]
    assert item["precision"] == "fp32" and item["exported_now"] is False
    assert item["identity"] == tiny_encoder.identity
    assert item["cache_folder"] == str(tiny_encoder.cache_folder) and item["embed_dim"] == 32


def test_export_builds_a_fresh_cache_with_progress_on_stderr(warm_env, monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("OUTLYNE_CACHE_DIR", str(tmp_path / "fresh"))
    assert main(["export", "--precision", "int8", "--json"]) == 0
    captured = capsys.readouterr()
    (item,) = json.loads(captured.out)["exports"]  # stdout is pure JSON: NNCF's output went to stderr
    assert item["precision"] == "int8" and item["exported_now"] is True
    assert Path(item["cache_folder"]).is_relative_to(tmp_path / "fresh")
    assert "outlyne: exporting" in captured.err and "compressing" in captured.err
    assert main(["export", "--precision", "int8"]) == 0
    assert "int8: already cached" in capsys.readouterr().out


def test_embed_without_normalization(warm_env, tiny_encoder, sketch_files, capsys) -> None:
    assert main(["embed", *map(str, sketch_files), "--no-normalize", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["identity"] == tiny_encoder.identity and out["embed_dim"] == 32
    assert out["normalized"] is False
    assert [item["image"] for item in out["embeddings"]] == [str(path) for path in sketch_files]
    vectors = np.asarray([item["embedding"] for item in out["embeddings"]], np.float32)
    assert vectors.shape == (2, 32)
    expected = tiny_encoder.embed_images([Image.open(path) for path in sketch_files])
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_embed_normalizes_sketches_by_default(warm_env, tiny_encoder, sketch_files, capsys) -> None:
    from outlyne.sketch.normalize import normalize

    assert main(["embed", str(sketch_files[0]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["normalized"] is True
    expected = tiny_encoder.embed_images([normalize(sketch_files[0]).model_image])
    np.testing.assert_allclose(out["embeddings"][0]["embedding"], expected[0], atol=1e-5)


def test_embed_prints_a_readable_line_per_image(warm_env, sketch_files, capsys) -> None:
    assert main(["embed", str(sketch_files[0]), "--no-normalize"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(sketch_files[0])) and "32 dims" in line


def test_embed_a_corrupt_file_is_a_one_line_error(warm_env, tmp_path, capsys) -> None:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not a png")
    assert main(["embed", str(corrupt), "--no-normalize"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("outlyne: ") and "corrupt.png" in err and "\n" not in err


def test_a_missing_model_is_a_one_line_error(warm_env, monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("OUTLYNE_MODEL", str(tmp_path / "nowhere"))
    assert main(["export"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith("outlyne: OUTLYNE_MODEL=")  # after the progress lines


def test_the_real_entry_point_embeds_from_a_warm_cache(warm_env, sketch_files) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "outlyne", "embed", str(sketch_files[0]), "--no-normalize", "--json"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert len(json.loads(completed.stdout)["embeddings"][0]["embedding"]) == 32
