"""The Space image, checked without building it: what its steps do, run here on the tiny checkpoint.

The real build and run are checked by scripts/space_image.py, which .ci/run runs after the tests. Here:
the build stage's steps, replayed with exactly the files the Dockerfile copies before each of them (so the
model layers cannot depend on more than they copy), the runtime stage's contents, the app's behaviour on
SIGTERM, and the script's own argument handling and parsing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from outlyne_dev.app_server import ROOT, AppServer, free_port, wait_until_answers

EXPORT_ONLY = {"torch", "nncf"}  # needed to export, never to serve
DEVELOPER_ONLY = ("outlyne_dev", "tests", "benchmarks", "scripts/space_image.py", "scripts/make_examples.py")


def _load_space_image():
    spec = importlib.util.spec_from_file_location("space_image", ROOT / "scripts" / "space_image.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


space_image = _load_space_image()


# -- the Dockerfile as a list of steps --------------------------------------------------------------------


def _stages() -> dict[str, list[tuple[str, list[str]]]]:
    """{stage: [(INSTRUCTION, words)]}, continuation lines joined, comments and flags kept as words."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: dict[str, list[tuple[str, list[str]]]] = {}
    current: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "FROM":
            current = stages.setdefault(words[-1], [])
        else:
            current.append((words[0], words[1:]))
    return stages


def _copy_from_context(words: list[str], workdir: Path, into: Path) -> None:
    """COPY SRC... DEST from the repository into `into` (the image's /), relative to WORKDIR."""
    *sources, dest = [word for word in words if not word.startswith("--")]
    target = into / (dest.lstrip("/") if dest.startswith("/") else workdir / dest)
    for source in sources:
        path = ROOT / source
        if path.is_dir():
            shutil.copytree(path, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            destination = target / path.name if dest.endswith("/") else target
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, destination)


def _is_context_copy(keyword: str, words: list[str]) -> bool:
    return keyword == "COPY" and not any(word.startswith("--from=") for word in words)


def _replay_build_stage(root: Path, env: dict[str, str]) -> dict[str, list[str]]:
    """Copy what the build stage copies from WORKDIR on and run its `python -m outlyne` steps in order.
    Returns, per step, the files present when it ran."""
    workdir = Path(".")
    seen: dict[str, list[str]] = {}
    for keyword, words in _stages()["build"]:
        if keyword == "WORKDIR":
            workdir = Path(words[0].lstrip("/"))
        elif _is_context_copy(keyword, words):
            _copy_from_context(words, workdir, root)
        elif keyword == "RUN" and words[:3] == ["python", "-m", "outlyne"]:
            cwd = root / workdir
            files = sorted(str(p.relative_to(cwd)) for p in cwd.rglob("*") if p.is_file())
            seen[" ".join(words)] = [name for name in files if "__pycache__" not in name]
            completed = subprocess.run(
                [sys.executable, *words[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
            )
            assert completed.returncode == 0, f"RUN {' '.join(words)}:\n{completed.stderr[-3000:]}"
    return seen


@pytest.fixture(scope="module")
def replayed_build(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("image-root")
    cache = root / "opt" / "outlyne-cache"
    env = {
        **os.environ,
        "OUTLYNE_MODEL": str(tiny_checkpoint),
        "OUTLYNE_PRECISION": "fp32",
        "OUTLYNE_CACHE_DIR": str(cache),
        "HF_HUB_OFFLINE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("PYTHONPATH", None)
    return _replay_build_stage(root, env), cache


def test_the_model_steps_run_with_only_the_files_copied_before_them(replayed_build) -> None:
    seen, cache = replayed_build
    assert list(seen) == list(space_image.EXPORT_STEPS)
    assert any(cache.glob("ir/*/manifest.json")), "no IR exported"
    assert any(cache.glob("concept-embeddings-*.npz")), "no concept embeddings cached"
    export_files, concept_files = (seen[step] for step in space_image.EXPORT_STEPS)
    # The export cannot see the concept bank, and neither step sees the web layer or the app: editing
    # those leaves both model layers cached.
    assert "concepts.json" not in export_files and "concepts.json" in concept_files
    for files in (export_files, concept_files):
        assert "app.py" not in files and not any(name.startswith("outlyne/web/") for name in files)


def test_the_runtime_stage_carries_the_app_and_no_developer_tooling(tmp_path: Path) -> None:
    root = tmp_path
    workdir = Path(".")
    for keyword, words in _stages()["runtime"]:
        if keyword == "WORKDIR":
            workdir = Path(words[0].lstrip("/"))
        elif _is_context_copy(keyword, words):
            _copy_from_context(words, workdir, root)
    app = root / "app"
    assert (app / "app.py").is_file() and (app / "concepts.json").is_file()
    assert (app / "outlyne" / "web").is_dir() and any((app / "examples").glob("*.png"))
    assert (app / "scripts" / "healthcheck.py").is_file()
    for name in DEVELOPER_ONLY:
        assert not (app / name).exists(), name
    # The CLI works there without outlyne_dev: the developer commands say so instead of failing.
    completed = subprocess.run(
        [sys.executable, "-m", "outlyne", "bench"], cwd=app, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode != 0 and "developer command" in completed.stderr


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            pins[name.lower()] = version
    return pins


def test_serving_requirements_are_the_full_ones_without_the_export_only_packages() -> None:
    full = _pins(ROOT / "requirements.txt")
    serve = _pins(ROOT / "requirements-serve.txt")
    assert set(full) >= EXPORT_ONLY
    assert serve == {name: version for name, version in full.items() if name not in EXPORT_ONLY}


# -- the app the image runs -----------------------------------------------------------------------------


def test_the_served_app_runs_without_torch(app: AppServer) -> None:
    """The runtime image has no torch: the warm-cache serving path must never load it."""
    loaded = Path(f"/proc/{app.process.pid}/maps").read_text()
    assert "libtorch" not in loaded and "/torch/" not in loaded


def test_health_check_passes_for_a_running_app_and_fails_without_one(app: AppServer) -> None:
    script = [sys.executable, str(ROOT / "scripts" / "healthcheck.py")]
    port = app.env["GRADIO_SERVER_PORT"]
    up = subprocess.run(script, env={"GRADIO_SERVER_PORT": port}, capture_output=True, timeout=30)
    assert up.returncode == 0, up.stderr
    down = subprocess.run(
        script, env={"GRADIO_SERVER_PORT": str(free_port())}, capture_output=True, text=True, timeout=30
    )
    assert down.returncode == 1
    assert "no answer" in down.stderr


def test_sigterm_closes_the_server_and_exits_cleanly(app: AppServer, tmp_path: Path) -> None:
    """`docker stop` sends SIGTERM; app.py shuts Gradio down and exits 0 (unhandled, it would die by
    the signal here, and be ignored as a container's PID 1)."""
    port = free_port()
    env = {**app.env, "GRADIO_SERVER_PORT": str(port)}  # the shared server's warm cache
    log_path = tmp_path / "app.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=log)
    server = AppServer(f"http://127.0.0.1:{port}/", process, log_path, app.gallery, env)
    try:
        wait_until_answers(server)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, server.log_tail()
    finally:
        server.stop()


# -- scripts/space_image.py -----------------------------------------------------------------------------


def test_the_script_defaults_to_the_tiny_model_and_validates_the_model_argument(capsys) -> None:
    args = space_image.parse_args([])
    assert (args.model, args.engine, args.precision) == ("tiny", "auto", "int8-static")
    assert space_image.parse_args(["--model", "google/siglip-base-patch16-224"]).model.startswith("google/")
    for bad in ("./models/x", "/abs/path", "siglip"):
        with pytest.raises(SystemExit):
            space_image.parse_args(["--model", bad])
    assert "--model" in capsys.readouterr().err


def test_the_script_picks_docker_only_when_its_daemon_answers() -> None:
    both = {"docker": "/usr/bin/docker", "podman": "/usr/bin/podman"}.get
    assert space_image.pick_engine("auto", which=both, answers=lambda engine: True) == "docker"
    assert space_image.pick_engine("auto", which=both, answers=lambda engine: engine == "podman") == "podman"
    assert space_image.pick_engine("podman", which=both, answers=lambda engine: False) == "podman"
    with pytest.raises(space_image.CheckFailed, match="podman"):
        space_image.pick_engine("auto", which=lambda name: None, answers=lambda engine: True)


def test_the_podman_build_keeps_the_health_check_and_passes_the_pip_secret(tmp_path: Path) -> None:
    secret = tmp_path / "pip.conf"
    command = space_image.build_command(
        "podman", tmp_path, "t:x", {"OUTLYNE_MODEL": "/app/models/m", "TORCH_INDEX_URL": ""}, secret, False
    )
    assert command[:2] == ["podman", "build"] and command[-1] == str(tmp_path)
    assert "--format" in command and command[command.index("--format") + 1] == "docker"
    assert f"id=pip.conf,src={secret}" in command
    assert "TORCH_INDEX_URL=" in command and "--no-cache" not in command
    docker = space_image.build_command("docker", tmp_path, "t:x", {}, None, True)
    assert "--format" not in docker and "--secret" not in docker and "--no-cache" in docker


def test_the_pip_conf_secret_limits_the_build_to_the_wheelhouse() -> None:
    import configparser

    parser = configparser.ConfigParser()
    parser.read_string(space_image.pip_conf("http://127.0.0.1:8000/"))
    assert dict(parser["global"]) == {"no-index": "true", "find-links": "http://127.0.0.1:8000/"}


@pytest.mark.parametrize(
    ("engine", "log", "expected"),
    [
        (
            "podman",
            "[2/3] STEP 9/12: RUN python -m outlyne export\n--> Using cache 1f2e\n--> 1f2e\n"
            "[2/3] STEP 12/12: RUN python -m outlyne export --concepts\nexporting...\n--> 9a8b\n",
            {"python -m outlyne export": True, "python -m outlyne export --concepts": False},
        ),
        (
            "docker",
            "#14 [build 9/12] RUN python -m outlyne export\n#14 CACHED\n\n"
            "#16 [build 12/12] RUN python -m outlyne export --concepts\n#16 CACHED\n",
            {"python -m outlyne export": True, "python -m outlyne export --concepts": True},
        ),
    ],
)
def test_the_script_reads_which_model_steps_came_from_the_cache(engine, log, expected) -> None:
    assert space_image.cached_steps(engine, log) == expected


def test_the_staged_context_holds_the_repository_and_the_checkpoint(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    context = space_image.stage_context(tmp_path / "context", checkpoint)
    for name in ("Dockerfile", "app.py", "concepts.json", "requirements.txt", "models/README.md"):
        assert (context / name).is_file(), name
    assert (context / space_image.TINY_MODEL_DIR / "config.json").is_file()
    assert not (context / ".venv").exists() and not (context / ".git").exists()


def test_the_wheelhouse_server_serves_the_folder_on_loopback_only(tmp_path: Path) -> None:
    import urllib.request

    (tmp_path / "pkg-1.0-py3-none-any.whl").write_bytes(b"wheel")
    with space_image.serve_folder(tmp_path) as url:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=10) as response:
            assert b"pkg-1.0-py3-none-any.whl" in response.read()


def test_a_wheelhouse_filled_for_the_same_requirements_is_not_filled_again(tmp_path: Path) -> None:
    import hashlib

    requirements = (ROOT / "requirements.txt").read_bytes()
    (tmp_path / ".filled-for").write_text(hashlib.sha256(requirements).hexdigest())
    assert space_image.fill_wheelhouse(tmp_path, None) == "already filled for these requirements"


def test_the_script_reads_both_engines_finish_times_alike() -> None:
    podman = space_image.parse_engine_time("2026-11-29 21:27:21.348981278 +0000 UTC")
    docker = space_image.parse_engine_time("2026-11-29T21:27:21.348981278Z")
    assert podman == docker == pytest.approx(1795987641.349, abs=1e-3)
    assert space_image.parse_engine_time("not a time") is None
