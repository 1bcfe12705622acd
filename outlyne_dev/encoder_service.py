"""A real encoder service for tests and the scale benchmark: `bash scripts/serve_encoder.sh` (Triton
through PyTriton, in its own environment) on free ports, waited on until each model reports ready,
stopped or killed on demand.

Each service gets its own short-named PYTRITON_HOME and TMPDIR under /tmp (PyTriton's ZeroMQ socket paths
live there and must stay under 107 characters, which pytest's temporary folders exceed), deleted after
every stop or kill: the ~22 MB workspace PyTriton copies per run never piles up in ~/.cache/pytriton.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from outlyne.model import wire
from outlyne_dev.app_server import ROOT, free_port
from outlyne_dev.processes import log_tail

SCRIPT = ROOT / "scripts" / "serve_encoder.sh"
BUILD_TIMEOUT_S = 900.0  # a cold build downloads PyTriton (Triton inside) and OpenVINO
START_TIMEOUT_S = 180.0  # two shared cores: Triton ~1 s, then each model ~2-5 s, plus the export check
STOP_TIMEOUT_S = 60.0  # Triton may wait up to 30 s for in-flight requests


class ServiceEnvironmentError(RuntimeError):
    """The service's environment could not be built: the reason, for a failing (not skipped) test."""


def build_environment() -> Path:
    """The encoder service's venv, built by the script if missing (.ci/run builds it before pytest)."""
    completed = subprocess.run(
        ["bash", str(SCRIPT), "--build-only"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    if completed.returncode != 0:
        tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-25:])
        raise ServiceEnvironmentError(
            f"scripts/serve_encoder.sh --build-only failed (exit {completed.returncode}):\n{tail}"
        )
    return Path(completed.stdout.strip().splitlines()[-1])


def get_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


@dataclass
class EncoderService:
    """One service: model and cache from `env` (OUTLYNE_*), extra serve-encoder arguments in `arguments`."""

    workdir: Path
    env: dict[str, str]
    arguments: list[str] = field(default_factory=list)
    name: str = wire.DEFAULT_NAME
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    starts: int = 0
    scratch: Path | None = None

    @property
    def url(self) -> str:
        return f"kserve-v2://127.0.0.1:{self.port}/{self.name}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"service-{self.starts}.log"

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)

    def start(self) -> None:
        """Start on the same ports as before; return once every model answers ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.scratch = Path(tempfile.mkdtemp(prefix="pyt-"))
        env = {
            **self.env,
            "PYTRITON_HOME": str(self.scratch / "home"),
            "TMPDIR": str(self.scratch),  # Triton's Python backend unpacks each model under TMPDIR
            "OUTLYNE_APP_PYTHON": sys.executable,  # the export check runs with the app's interpreter
            "PYTHONUNBUFFERED": "1",
        }
        command = ["bash", str(SCRIPT), "--port", str(self.port), "--metrics-port", str(self.metrics_port)]
        with self.log_path.open("w") as log:
            # A session of its own, so kill() takes tritonserver and its backend stubs down with it.
            self.process = subprocess.Popen(
                [*command, "--name", self.name, *self.arguments],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready()

    def models(self) -> list[str]:
        return [wire.vision_model(self.name), wire.text_model(self.name), wire.info_model(self.name)]

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Poll each model's own readiness (/v2/health/ready is 200 before any model has loaded)."""
        deadline = time.monotonic() + timeout
        waiting = self.models()
        while waiting:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise RuntimeError(f"the encoder service exited ({code}):\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"the encoder service was not ready in {timeout:.0f} s:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.http}/v2/models/{waiting[0]}/ready", timeout=2) as answer:
                    if answer.status == 200:
                        waiting.pop(0)
                        continue
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)

    def statistics(self, model: str) -> dict:
        """Triton's statistics of one model, readable without a token (see service.RESTRICTED_ENDPOINTS)."""
        (stats,) = get_json(f"{self.http}/v2/models/{model}/stats")["model_stats"]
        return stats

    def kill(self) -> None:
        """The service crashes: SIGKILL to its whole process group, then its leftovers are removed."""
        unpacked = self._unpacked_models()
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)
        self._clean()
        for folder in unpacked:
            shutil.rmtree(folder, ignore_errors=True)

    def _unpacked_models(self) -> set[Path]:
        """The folders Triton's Python backend unpacked our models into (/tmp/folderXXXXXX, whatever
        TMPDIR says; Triton deletes them on a clean stop, a kill leaves them): named on the command line
        of each backend stub of our process group."""
        if self.process is None:
            return set()
        folders = set()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.getpgid(int(pid)) != self.process.pid:
                    continue
                arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except (OSError, ProcessLookupError):
                continue
            for argument in arguments:
                match = re.fullmatch(rb"(/tmp/folder\w{6})/\d+/model\.py", argument)
                if match:
                    folders.add(Path(match.group(1).decode()))
        return folders

    def stop(self) -> None:
        """A clean stop: SIGTERM, as docker stop sends it; the service stops Triton and its workspace."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_TIMEOUT_S)
        self.kill()

    def _clean(self) -> None:
        # Killed processes leave the group's stragglers (a backend stub) for a moment: make sure none stays.
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
