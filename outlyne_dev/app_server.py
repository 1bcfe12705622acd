"""Launch `python app.py` in a subprocess the way a person would, for the API, concurrency and browser tests.

The server gets the tiny random checkpoint (OUTLYNE_MODEL) and its own cache folder, baked by the
Dockerfile's own `python -m outlyne` build steps (so the app starts from a warm cache, as in the image),
and the local-folder search backend over a few generated line drawings indexed with
`python -m outlyne index`. One server per test process: every test module asks `shared_app_server` and
gets the same one, stopped when the process exits.
"""

from __future__ import annotations

import atexit
import os
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from outlyne_dev.processes import log_tail, stop_process

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 240.0  # two shared cores: the tiny export and concept embeddings take ~15 s, leave room
CLI_TIMEOUT_S = 900.0  # a cold export on two cores shared with other work (and a CPU hog) took > 300 s


@dataclass
class AppServer:
    url: str
    process: subprocess.Popen
    log_path: Path
    gallery: Path
    env: dict[str, str]

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def stop(self) -> None:
        stop_process(self.process, timeout=15)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_gallery(folder: Path, count: int = 16, seed: int = 0) -> Path:
    """Line drawings (circles, boxes, zigzags) on white: something for the local backend to rank."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image = Image.new("RGB", (128, 128), "white")
        draw = ImageDraw.Draw(image)
        for _ in range(rng.randint(1, 3)):
            x, y, size = rng.randint(8, 70), rng.randint(8, 70), rng.randint(20, 50)
            shape = index % 3
            if shape == 0:
                draw.ellipse([x, y, x + size, y + size], outline="black", width=3)
            elif shape == 1:
                draw.rectangle([x, y, x + size, y + size], outline="black", width=3)
            else:
                points = [(x + step * size // 4, y + (size if step % 2 else 0)) for step in range(5)]
                draw.line(points, fill="black", width=3)
        image.save(folder / f"drawing-{index:02d}.png")
    return folder


def app_environment(workdir: Path, checkpoint: Path, gallery: Path, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        OUTLYNE_MODEL=str(checkpoint),
        OUTLYNE_CACHE_DIR=str(workdir / "cache"),
        OUTLYNE_SEARCH=f"local:{gallery}",
        GRADIO_SERVER_PORT=str(port),
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_ANALYTICS_ENABLED="False",
        GRADIO_TEMP_DIR=str(workdir / "gradio-tmp"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def dockerfile_cli_steps(dockerfile: Path = ROOT / "Dockerfile") -> list[list[str]]:
    """The `RUN python -m outlyne ...` steps of the Dockerfile, as argument lists, in order."""
    steps = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:4] == ["RUN", "python", "-m", "outlyne"]:
            steps.append(words[1:])
    return steps


def run_cli(arguments: list[str], env: dict[str, str], timeout: float = CLI_TIMEOUT_S) -> None:
    """One CLI call with the app's environment; `python` is this interpreter (the image's venv python)."""
    command = [sys.executable, *arguments[1:]] if arguments[0] == "python" else arguments
    completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if completed.returncode != 0:
        raise RuntimeError(f"`{' '.join(arguments)}` failed:\n{completed.stdout}\n{completed.stderr}")


def bake_like_the_image(gallery: Path, env: dict[str, str], timeout: float = CLI_TIMEOUT_S) -> None:
    """What the Docker build stage does (export, then a first interrogation that caches the concept
    embeddings), then index the gallery; app.py then starts from a warm cache, as in the image."""
    for step in dockerfile_cli_steps():
        run_cli(step, env, timeout)
    run_cli(["python", "-m", "outlyne", "index", str(gallery), "--json"], env, timeout)


def wait_until_answers(server: AppServer, timeout: float = START_TIMEOUT_S) -> None:
    """Poll the page until it answers 200, the process dies, or the time is up (then say why)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"app.py exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"app.py did not answer within {timeout:.0f} s:\n{server.log_tail()}")


def start_app_server(workdir: Path, checkpoint: Path) -> AppServer:
    workdir.mkdir(parents=True, exist_ok=True)
    gallery = make_gallery(workdir / "gallery")
    port = free_port()
    env = app_environment(workdir, checkpoint, gallery, port)
    bake_like_the_image(gallery, env)
    log_path = workdir / "app.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    server = AppServer(f"http://127.0.0.1:{port}/", process, log_path, gallery, env)
    atexit.register(server.stop)  # also when a test run is interrupted
    wait_until_answers(server)
    return server


_shared: AppServer | None = None


def shared_app_server(workdir: Path, checkpoint: Path) -> AppServer:
    """The one server of this test process (started on first use, restarted if it died)."""
    global _shared
    if _shared is None or _shared.process.poll() is not None:
        _shared = start_app_server(workdir, checkpoint)
    return _shared


if __name__ == "__main__":  # `python -m outlyne_dev.app_server FOLDER CHECKPOINT`: serve until Ctrl-C
    served = start_app_server(Path(sys.argv[1]), Path(sys.argv[2]))
    print(served.url, flush=True)
    try:
        served.process.wait()
    except KeyboardInterrupt:
        served.stop()
