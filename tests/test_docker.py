"""The Docker Space packaging, checked without a Docker engine (none exists on these machines).

The Dockerfile is read as data: its stages, user, port, health check and command, and that every RUN is
either pip with a pinned file or an outlyne CLI call. The CLI calls themselves run in tests/app_server.py
(the test server is baked by them), and the claims the runtime stage rests on are checked against that
server: it serves without torch loaded, and the health check script answers for it.
"""

from __future__ import annotations

import fnmatch
import subprocess
import sys
from pathlib import Path

import pytest

from outlyne_dev.app_server import ROOT, AppServer, dockerfile_cli_steps, free_port

DOCKERFILE = ROOT / "Dockerfile"
EXPORT_ONLY = {"torch", "nncf"}  # needed to export, never to serve


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            rows.append((keyword.upper(), " ".join(rest.split())))
    return rows


def _stages() -> dict[str, list[tuple[str, str]]]:
    stages: dict[str, list[tuple[str, str]]] = {}
    current = None
    for keyword, rest in _instructions():
        if keyword == "FROM":
            current = rest.split(" AS ")[-1] if " AS " in rest else rest
            stages[current] = []
        elif current is not None:
            stages[current].append((keyword, rest))
    return stages


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


def test_dockerfile_has_a_build_stage_and_a_lean_runtime_stage() -> None:
    stages = _stages()
    assert list(stages) == ["serve-deps", "build", "runtime"]
    runtime = dict(stages["runtime"])
    assert runtime["USER"] == "1000:1000"
    assert runtime["EXPOSE"] == "7860"
    assert runtime["CMD"] == '["python", "app.py"]'
    assert "scripts/healthcheck.py" in runtime["HEALTHCHECK"]
    assert not any(keyword == "RUN" for keyword, _ in stages["runtime"])  # nothing installed at runtime
    copies = [rest for keyword, rest in stages["runtime"] if keyword == "COPY"]
    assert "--from=serve-deps /opt/venv /opt/venv" in copies  # the torch-free virtualenv
    assert any("--from=build" in c and "/opt/outlyne-cache" in c for c in copies)  # the baked cache
    assert not any("--from=build /opt/venv" in c for c in copies)


def test_the_build_stage_installs_cpu_torch_and_bakes_the_cache() -> None:
    runs = [rest for keyword, rest in _stages()["build"] if keyword == "RUN"]
    assert any("download.pytorch.org/whl/cpu" in run and "torch==" in run for run in runs)
    steps = [" ".join(step) for step in dockerfile_cli_steps()]
    assert steps == ["python -m outlyne export", "python -m outlyne interrogate examples/house.png --json"]
    assert (ROOT / "examples" / "house.png").is_file()


def test_every_run_step_is_pip_with_a_pinned_file_or_the_outlyne_cli() -> None:
    allowed = (
        "python -m venv /opt/venv",
        "/opt/venv/bin/pip install -r ",
        "pip install -r ",
        "pip install --index-url https://download.pytorch.org/whl/cpu torch==",
        "python -m outlyne ",
    )
    for keyword, rest in _instructions():
        if keyword == "RUN":
            assert rest.startswith(allowed), rest


def test_torch_pin_in_the_dockerfile_matches_requirements() -> None:
    torch = _pins(ROOT / "requirements.txt")["torch"]
    assert f"torch=={torch}" in DOCKERFILE.read_text()


def test_everything_the_image_copies_exists_and_is_not_docker_ignored() -> None:
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()]
    ignored = [pattern for pattern in ignored if not pattern.startswith("#")]
    for keyword, rest in _instructions():
        if keyword != "COPY" or "--from=" in rest:
            continue
        sources = [word for word in rest.split() if not word.startswith("--")][:-1]
        for source in sources:
            if source == ".":
                continue
            assert (ROOT / source).exists(), source
            assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source


def test_the_served_app_runs_without_torch(app: AppServer) -> None:
    """The runtime image has no torch: the warm-cache serving path must never load it."""
    maps = Path(f"/proc/{app.process.pid}/maps")
    if not maps.exists():
        pytest.skip("needs Linux /proc")
    loaded = maps.read_text()
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
