"""The CLI against hostile and unlucky input (issue 11): one plain line on stderr, never a traceback, and
under --json nothing but JSON on stdout, cold cache or warm."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from outlyne_dev.hostile import EPS_BYTES, drawing_png, png_declaring, truncated_png
from tests.support.outlyne_cli import run_outlyne, tiny_env


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile-cli")
    contents = {
        "drawing.png": drawing_png(),
        "cut.png": truncated_png(),
        "renamed-eps.png": EPS_BYTES,
        "bomb.png": png_declaring(13000, 13000),
        "nested.json": b"[" * 100_000 + b"]" * 100_000,
        "long-label.json": json.dumps(
            {"version": 1, "concepts": [{"label": "x" * 10_000, "group": "thing"}]}
        ).encode(),
    }
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in contents}


@pytest.fixture(scope="module")
def warm_env(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory, files) -> dict[str, str]:
    """The first run is on a cold cache (export, concept embeddings): its stdout must still be JSON only."""
    env = tiny_env(tiny_checkpoint, tmp_path_factory.mktemp("cold-cache"))
    done = run_outlyne(["interrogate", str(files["drawing.png"]), "--json"], env)
    assert done.returncode == 0, done.stderr
    assert "concepts" in json.loads(done.stdout)
    assert done.stderr.strip(), "a cold start says what it is doing, on stderr"
    return env


def _one_plain_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode != 0
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert len(lines[0]) < 300
    return lines[0]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cut.png", "outlyne: The image cut.png is truncated or corrupt."),
        ("renamed-eps.png", "outlyne: The image renamed-eps.png is not a PNG, JPEG, WebP, GIF or BMP image."),
        (
            "bomb.png",
            "outlyne: The image bomb.png is too large (13000x13000 pixels); the limit is 50 megapixels.",
        ),
    ],
)
def test_bad_images_are_one_plain_line(warm_env, files, name: str, expected: str) -> None:
    assert _one_plain_line(run_outlyne(["interrogate", str(files[name]), "--json"], warm_env)) == expected


def test_unwritable_save_normalized_is_one_plain_line(warm_env, files) -> None:
    done = run_outlyne(
        ["interrogate", str(files["drawing.png"]), "--save-normalized", "/proc/x.png"], warm_env
    )
    assert _one_plain_line(done).startswith("outlyne: Cannot save the normalized sketch as x.png (")


def test_deeply_nested_concepts_file_is_one_plain_line(warm_env, files) -> None:
    done = run_outlyne(
        ["interrogate", str(files["drawing.png"]), "--concepts", str(files["nested.json"])], warm_env
    )
    assert _one_plain_line(done).endswith("is nested too deeply to be a concept file.")


def test_a_10000_character_label_is_not_echoed_whole(warm_env, files) -> None:
    done = run_outlyne(
        ["interrogate", str(files["drawing.png"]), "--concepts", str(files["long-label.json"])], warm_env
    )
    line = _one_plain_line(done)
    assert "10000 characters long" in line and "x" * 100 not in line


@pytest.mark.parametrize("flag", [["--top", "0"], ["--top-k", "-3"]])
def test_non_positive_counts_are_usage_errors(warm_env, files, flag: list[str]) -> None:
    done = run_outlyne(["search", str(files["drawing.png"]), *flag], warm_env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "must be a positive integer" in done.stderr


def test_a_cache_folder_that_cannot_be_written_is_one_plain_line(tiny_checkpoint, tmp_path, files) -> None:
    if os.geteuid() == 0:  # root writes anywhere a mode allows nothing: sysfs refuses even root
        cache = Path("/sys")
    else:
        cache = tmp_path / "read-only"
        cache.mkdir(mode=0o555)
    done = run_outlyne(["interrogate", str(files["drawing.png"]), "--json"], tiny_env(tiny_checkpoint, cache))
    assert _one_plain_line(done) == (
        "outlyne: The model cache folder (OUTLYNE_CACHE_DIR) cannot be used: permission denied."
    )
