"""The IR cache: reused without exporting, rebuilt when damaged, published atomically, errors in words."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from outlyne.config import Config
from outlyne.errors import ModelUnavailable
from outlyne.model import export, ir_cache
from outlyne.model import source as model_source
from outlyne.model.calibration import sketch_images
from outlyne.model.encoder import load_encoder

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def export_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts real exports (the exporter still runs: this is a spy, not a mock)."""
    calls: list[str] = []
    real = export.export_checkpoint

    def counting(checkpoint, destination, precision, **kwargs):
        calls.append(precision)
        return real(checkpoint, destination, precision, **kwargs)

    monkeypatch.setattr(export, "export_checkpoint", counting)
    return calls


@pytest.fixture
def private_cache(tiny_encoder, tmp_path: Path) -> Path:
    """A cache dir of this test's own holding a copy of the session's fp32 export."""
    cache_dir = tmp_path / "cache"
    shutil.copytree(tiny_encoder.cache_folder, cache_dir / "ir" / tiny_encoder.cache_folder.name)
    return cache_dir


def _config(checkpoint: Path, cache_dir: Path, precision: str = "fp32") -> Config:
    return Config(model=str(checkpoint), precision=precision, cache_dir=cache_dir)


def test_second_load_does_not_export(tiny_encoder, tiny_checkpoint, encoder_cache_dir, export_calls) -> None:
    again = load_encoder(_config(tiny_checkpoint, encoder_cache_dir))
    assert again.exported_now is False
    assert export_calls == []
    assert again.identity == tiny_encoder.identity and again.cache_folder == tiny_encoder.cache_folder


def _truncate_bin(folder: Path) -> None:
    path = folder / "vision.bin"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def _flip_one_bit_in_bin(folder: Path) -> None:
    """Same size, one bit different: before issue 11 this loaded silently with wrong embeddings."""
    path = folder / "vision.bin"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def _garbage_xml(folder: Path) -> None:
    (folder / "vision.xml").write_text("<net><this is not IR")


def _delete_manifest(folder: Path) -> None:
    (folder / ir_cache.MANIFEST).unlink()


def _garbage_xml_behind_a_consistent_manifest(folder: Path) -> None:
    """Damage that checksums cannot see (the manifest agrees): OpenVINO itself fails to read it."""
    import json

    _garbage_xml(folder)
    manifest = json.loads((folder / ir_cache.MANIFEST).read_text())
    info = {key: value for key, value in manifest.items() if key not in ("files", "format")}
    ir_cache.write_manifest(folder, info)


@pytest.mark.parametrize(
    "damage",
    [
        _truncate_bin,
        _flip_one_bit_in_bin,
        _garbage_xml,
        _delete_manifest,
        _garbage_xml_behind_a_consistent_manifest,
    ],
    ids=["truncated-bin", "flipped-bit-bin", "garbage-xml", "no-manifest", "garbage-xml-consistent-manifest"],
)
def test_a_damaged_cache_is_rebuilt(
    tiny_encoder, tiny_checkpoint, private_cache, export_calls, damage
) -> None:
    folder = private_cache / "ir" / tiny_encoder.cache_folder.name
    damage(folder)
    messages: list[str] = []
    rebuilt = load_encoder(_config(tiny_checkpoint, private_cache), progress=messages.append)
    assert rebuilt.exported_now is True and export_calls == ["fp32"]
    assert rebuilt.cache_folder == folder
    ir_cache.read_manifest(folder, rebuilt.identity, full=True)
    assert any("rebuild" in message for message in messages)
    images = sketch_images(3, size=64, seed=1)
    np.testing.assert_allclose(rebuilt.embed_images(images), tiny_encoder.embed_images(images), atol=1e-5)
    assert not [p for p in (private_cache / "ir").iterdir() if p.name.startswith(".")]  # no leftovers
    again = load_encoder(_config(tiny_checkpoint, private_cache))
    assert again.exported_now is False and export_calls == ["fp32"]


def test_losing_an_export_race_uses_the_winner(tiny_encoder, tiny_checkpoint, tmp_path, monkeypatch) -> None:
    """Another process publishes the same export while ours runs: ours is dropped, theirs is used."""
    cache_dir = tmp_path / "cache"
    final = cache_dir / "ir" / tiny_encoder.cache_folder.name
    real = export.export_checkpoint

    def export_while_another_process_wins(checkpoint, destination, precision, **kwargs):
        shutil.copytree(tiny_encoder.cache_folder, final)
        (final / "winner").write_text("")  # not in its manifest; harmless, and marks whose folder it is
        return real(checkpoint, destination, precision, **kwargs)

    monkeypatch.setattr(export, "export_checkpoint", export_while_another_process_wins)
    encoder = load_encoder(_config(tiny_checkpoint, cache_dir))
    assert encoder.exported_now is True and encoder.cache_folder == final
    assert (final / "winner").exists()
    assert [p.name for p in (cache_dir / "ir").iterdir()] == [final.name]


def test_publish_is_atomic_between_two_writers(tmp_path: Path) -> None:
    final = tmp_path / "ir" / "entry"
    stagings = []
    for name in ("a", "b"):
        staging = ir_cache.staging_folder(tmp_path)
        (staging / "who").write_text(name)
        ir_cache.write_manifest(staging, {"key": "k"})
        stagings.append(staging)
    barrier, outcomes = threading.Barrier(2), []

    def race(staging: Path) -> None:
        barrier.wait()
        outcomes.append(ir_cache.publish(staging, final))

    threads = [threading.Thread(target=race, args=(staging,)) for staging in stagings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False, True]
    assert ir_cache.read_manifest(final, "k", full=True)["key"] == "k"
    assert (final / "who").read_text() in ("a", "b")


def test_identity_depends_on_model_files_and_precision(tiny_checkpoint: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_checkpoint, tmp_path / "copy"))
    before = model_source.resolve(str(copy)).identity
    assert before == model_source.resolve(str(copy)).identity
    config = copy / "config.json"
    config.write_text(config.read_text().replace('"logit_bias"', '"logit_bias" ', 1) + "\n")
    assert model_source.resolve(str(copy)).identity != before
    assert ir_cache.cache_key(before, "fp32") != ir_cache.cache_key(before, "int8")
    assert ir_cache.exporter_version() in ir_cache.cache_key(before, "fp32")


def test_a_cached_export_is_used_when_the_weights_are_not_here(tiny_encoder, tmp_path: Path) -> None:
    """A container may ship only the IR: a hub id with no local snapshot falls back to its cached export."""
    import json

    cache_dir = tmp_path / "cache"
    folder = Path(shutil.copytree(tiny_encoder.cache_folder, cache_dir / "ir" / "someone_siglip-fp32-x"))
    manifest = json.loads((folder / ir_cache.MANIFEST).read_text())
    manifest["model"] = "someone/siglip-not-downloaded"
    (folder / ir_cache.MANIFEST).write_text(json.dumps(manifest))
    encoder = load_encoder(
        Config(model="someone/siglip-not-downloaded", cache_dir=cache_dir, precision="fp32")
    )
    assert encoder.exported_now is False and encoder.cache_folder == folder


def test_a_missing_folder_is_model_unavailable(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-checkpoint"
    with pytest.raises(ModelUnavailable) as error:
        load_encoder(Config(model=str(missing), cache_dir=tmp_path / "cache"))
    message = str(error.value)
    assert "OUTLYNE_MODEL" in message and str(missing) in message and "no such folder" in message
    assert "python -m outlyne export" in message and "\n" not in message


def test_an_unknown_hub_id_is_model_unavailable_offline(tmp_path: Path) -> None:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # set by conftest: nothing is downloaded
    with pytest.raises(ModelUnavailable) as error:
        load_encoder(Config(model="nobody-here/no-such-siglip", cache_dir=tmp_path / "cache"))
    message = str(error.value)
    assert "OUTLYNE_MODEL='nobody-here/no-such-siglip'" in message
    assert "Hugging Face cache" in message and "HF_HUB_OFFLINE=1" in message
    assert "local folder" in message


def test_a_folder_that_is_not_a_checkpoint_is_model_unavailable(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailable, match=r"no config\.json"):
        load_encoder(Config(model=str(tmp_path / "empty"), cache_dir=tmp_path / "cache"))


def test_broken_weights_are_model_unavailable(tiny_checkpoint: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_checkpoint, tmp_path / "broken"))
    (copy / "model.safetensors").write_bytes(b"definitely not safetensors")
    with pytest.raises(ModelUnavailable, match="could not be exported"):
        load_encoder(Config(model=str(copy), cache_dir=tmp_path / "cache"))
    assert not list((tmp_path / "cache" / "ir").glob(".staging-*"))


def test_a_warm_start_never_imports_torch(tiny_encoder, tiny_checkpoint, encoder_cache_dir) -> None:
    code = (
        "import sys\n"
        "from outlyne.config import Config\n"
        "from outlyne.model.encoder import load_encoder\n"
        "from outlyne.model.calibration import sketch_images\n"
        "encoder = load_encoder(Config.from_env())\n"
        "assert encoder.embed_images(sketch_images(2, size=64)).shape == (2, 32)\n"
        "assert encoder.embed_texts(['a cat']).shape == (1, 32)\n"
        "print(encoder.exported_now, 'torch' in sys.modules, 'nncf' in sys.modules)\n"
    )
    env = {
        **os.environ,
        "OUTLYNE_MODEL": str(tiny_checkpoint),
        "OUTLYNE_CACHE_DIR": str(encoder_cache_dir),
        "OUTLYNE_PRECISION": "fp32",
        "PYTHONPATH": str(ROOT),
    }
    completed = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["False", "False", "False"]
