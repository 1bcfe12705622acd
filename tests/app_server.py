"""Launch `python app.py` in a subprocess the way a person would, for the API, concurrency and browser tests.

The server gets the tiny random checkpoint (OUTLYNE_MODEL), its own cache folder, and the local-folder
search backend over a few generated line drawings indexed with `python -m outlyne index` (which also
exports the model, so the app itself starts with a warm cache). One server per test process: every test
module asks `shared_app_server` and gets the same one, stopped when the process exits.
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

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 240.0  # two shared cores: the tiny export and concept embeddings take ~15 s, leave room
INDEX_TIMEOUT_S = 300.0


@dataclass
class AppServer:
    url: str
    process: subprocess.Popen
    log_path: Path
    gallery: Path
    env: dict[str, str]

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


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


def index_gallery(gallery: Path, env: dict[str, str]) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "outlyne", "index", str(gallery), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=INDEX_TIMEOUT_S,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"`python -m outlyne index` failed:\n{completed.stdout}\n{completed.stderr}")


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
    index_gallery(gallery, env)
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


if __name__ == "__main__":  # `python -m tests.app_server FOLDER CHECKPOINT`: serve until Ctrl-C
    served = start_app_server(Path(sys.argv[1]), Path(sys.argv[2]))
    print(served.url, flush=True)
    try:
        served.process.wait()
    except KeyboardInterrupt:
        served.stop()
