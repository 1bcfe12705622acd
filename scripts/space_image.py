"""Build the Hugging Face Space image with docker or podman, run it, and check it as a visitor would.

    python scripts/space_image.py [--engine auto|docker|podman] [--model tiny|HUB_ID] [--no-cache] ...

What it does, in order (each step prints one line; any failed check ends the run with exit code 1 and one
line saying which):
  1. picks the engine: docker when its daemon answers, else podman;
  2. makes sure the base image (the Dockerfile's PYTHON_IMAGE) exists: already there, or pulled, or, where
     no registry is reachable, made from Debian bookworm with debootstrap (root; the root file system is
     kept as a tarball in the cache folder, so later runs skip debootstrap);
  3. stages a build context: the repository's files (what git would commit, plus untracked files it does
     not ignore) and, for `--model tiny`, a tiny random-weight SigLIP checkpoint under models/;
  4. packages: with `--packages host` (the default on Linux x86-64 CPython 3.11) the host's pip, with the
     host's configuration (mirrors, certificates, local indexes), downloads every wheel into a wheelhouse
     that a local HTTP server hands to the build through a `pip.conf` build secret, so the build needs no
     registry of its own; `--packages index` lets the build's pip use PyPI and the PyTorch CPU index;
  5. builds the image and runs it, then checks: the page answers, `/interrogate` answers through
     gradio_client, the app's process runs as uid 1000 with a passwd entry and a home, the health check
     passes, the baked cache is used (nothing exported or written to the IR cache at start), SIGTERM ends
     the app within 2 s with exit code 0 (the engine's clean-up comes after), and a rebuild after a
     code-only change (README.md and app.py edited in the staged context) takes both model steps from the
     layer cache;
  6. prints the image size, build time, start-up time and stop time.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import hashlib
import http.server
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = "python:3.11-slim-bookworm"  # the Dockerfile's default PYTHON_IMAGE
DEFAULT_TAG = "outlyne-space:check"
TINY_MODEL_DIR = "models/tiny-siglip"  # inside the build context; the build stage's WORKDIR is /app
APP_PORT = 7860
START_TIMEOUT_S = 300.0
STOP_LIMIT_S = 2.0
STOP_GRACE_S = 10  # docker's default: a container still up after this is killed (exit code 137)
EXPORT_STEPS = ("python -m outlyne export", "python -m outlyne export --concepts")
# podman: keep HEALTHCHECK (the OCI format drops it), RUN steps get the host's network (the wheelhouse
# server listens on 127.0.0.1), and limits a container of Gradio + OpenVINO needs on this kind of host.
PODMAN_LIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]
PODMAN_BUILD = ["--format", "docker", "--network=host", *PODMAN_LIMITS]
# --passwd=false: podman otherwise adds a passwd entry for the image's user at run time, which would hide a
# missing one (Docker and Spaces add none).
PODMAN_RUN = [*PODMAN_LIMITS, "--passwd=false"]
DOCKER_BUILD = ["--network=host", "--progress=plain"]


class CheckFailed(Exception):
    """One failed check: its name and one sentence."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(f"{check}: {reason}")


@dataclass
class Figures:
    lines: list[str] = field(default_factory=list)

    def add(self, name: str, value: str) -> None:
        self.lines.append(f"{name}: {value}")
        say(f"{name}: {value}")


def say(message: str) -> None:
    print(f"space_image: {message}", flush=True)


# ---------------------------------------------------------------------------------------------------------
# Arguments


def default_packages() -> str:
    """The host's pip can fill the wheelhouse only with wheels the image (CPython 3.11, Linux x86-64) runs."""
    host_matches = (
        sys.implementation.name == "cpython"
        and sys.version_info[:2] == (3, 11)
        and platform.system() == "Linux"
        and platform.machine() in ("x86_64", "AMD64")
    )
    return "host" if host_matches else "index"


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "outlyne-space"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/space_image.sh", description="Build the Space image, run it and check it as a visitor."
    )
    parser.add_argument("--engine", choices=("auto", "docker", "podman"), default="auto")
    parser.add_argument(
        "--model",
        default="tiny",
        help="`tiny` (a random-weight checkpoint made here: no hub needed) or an OUTLYNE_MODEL hub id",
    )
    parser.add_argument("--precision", choices=("fp32", "int8", "int8-static"), default="int8-static")
    parser.add_argument(
        "--packages",
        choices=("host", "index"),
        default=default_packages(),
        help="host: a wheelhouse made by this machine's pip; index: the build's pip uses PyPI itself",
    )
    parser.add_argument(
        "--torch-index",
        default=None,
        help="where the CPU torch wheel comes from (default: pip's configuration with --packages host, "
        "the Dockerfile's PyTorch CPU index with --packages index)",
    )
    parser.add_argument("--tag", default=DEFAULT_TAG, help=f"image tag (default {DEFAULT_TAG})")
    parser.add_argument("--no-cache", action="store_true", help="build every layer again")
    parser.add_argument("--skip-rebuild", action="store_true", help="skip the code-only rebuild check")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir(), help="base tarball, wheels")
    parser.add_argument("--debian-mirror", default="http://deb.debian.org/debian")
    args = parser.parse_args(argv)
    if args.model != "tiny" and ("/" not in args.model or args.model.startswith(("/", "."))):
        parser.error("--model is `tiny` or a hub id such as google/siglip2-base-patch16-224")
    return args


# ---------------------------------------------------------------------------------------------------------
# The engine


def run(command: Sequence[str], *, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    try:
        completed = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CheckFailed(command[0], f"`{' '.join(command[:3])} ...` took over {timeout:.0f} s") from None
    if check and completed.returncode != 0:
        detail = (completed.stderr or completed.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CheckFailed(command[0], f"`{' '.join(command[:3])} ...` failed: {detail[0]}")
    return completed


def pick_engine(requested: str, which=shutil.which, answers=None) -> str:
    """docker when its daemon answers (`docker info`), else podman; a named engine must exist."""
    answers = answers or (lambda engine: run([engine, "info"], timeout=30, check=False).returncode == 0)
    candidates = ["docker", "podman"] if requested == "auto" else [requested]
    for engine in candidates:
        if which(engine) and (requested != "auto" or answers(engine)):
            return engine
    wanted = "docker (with a running daemon) or podman" if requested == "auto" else requested
    raise CheckFailed("engine", f"no {wanted} found: apt-get install podman")


def image_exists(engine: str, name: str) -> bool:
    return run([engine, "image", "inspect", name], timeout=60, check=False).returncode == 0


# ---------------------------------------------------------------------------------------------------------
# The base image


def ensure_base_image(engine: str, cache_dir: Path, mirror: str) -> str:
    if image_exists(engine, BASE_IMAGE):
        return "present"
    with contextlib.suppress(CheckFailed):  # no registry answers in time
        if run([engine, "pull", BASE_IMAGE], timeout=120, check=False).returncode == 0:
            return "pulled"
    tarball = cache_dir / "base-bookworm-python3.11.tar"
    if not tarball.is_file():
        make_base_tarball(tarball, mirror)
    changes = [
        "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        'CMD ["python3"]',
    ]
    command = [engine, "import", *(f"--change={change}" for change in changes), str(tarball), BASE_IMAGE]
    run(command, timeout=600)
    return f"made with debootstrap ({tarball})"


def make_base_tarball(tarball: Path, mirror: str) -> None:
    """Debian bookworm with what the official python:3.11-slim image offers the Dockerfile: python and pip
    on PATH, venv, CA certificates, and pip allowed to install (no EXTERNALLY-MANAGED marker)."""
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        raise CheckFailed(
            "base image",
            f"{BASE_IMAGE} is missing, cannot be pulled, and making it needs root and debootstrap",
        )
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="outlyne-base-", dir=tarball.parent) as work:
        rootfs = Path(work) / "rootfs"
        packages = "python3.11,python3-venv,python3-pip,ca-certificates"
        run(
            ["debootstrap", "--variant=minbase", f"--include={packages}", "bookworm", str(rootfs), mirror],
            timeout=1800,
        )
        for name, target in (
            ("python", "/usr/bin/python3.11"),
            ("python3", "/usr/bin/python3.11"),
            ("pip", "/usr/bin/pip3"),
        ):
            link = rootfs / "usr/local/bin" / name
            link.unlink(missing_ok=True)
            link.symlink_to(target)
        (rootfs / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / cache).glob("*"):
                if path.is_file():
                    path.unlink()
        partial = tarball.with_suffix(".partial")
        run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], timeout=600)
        partial.rename(tarball)


# ---------------------------------------------------------------------------------------------------------
# The build context and the packages


def stage_context(destination: Path, checkpoint: Path | None) -> Path:
    """The repository's files as git sees them (committed or not), plus the checkpoint under models/."""
    listed = run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"])
    for name in filter(None, listed.stdout.split("\0")):
        source = ROOT / name
        if source.is_file():  # listed but deleted in the working tree: not part of it
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    if checkpoint is not None:
        shutil.copytree(checkpoint, destination / TINY_MODEL_DIR, copy_function=shutil.copy2)
    return destination


def tiny_checkpoint(cache_dir: Path) -> Path:
    """Made once and kept: the same bytes in every run, so the export layer stays cached across runs."""
    folder = cache_dir / "tiny-siglip"
    if not (folder / "config.json").is_file():
        sys.path.insert(0, str(ROOT))
        from outlyne_dev.random_checkpoint import build_tiny_siglip

        staging = cache_dir / "tiny-siglip.partial"
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.redirect_stdout(sys.stderr):
            build_tiny_siglip(staging)
        staging.rename(folder)
    return folder


def fill_wheelhouse(wheelhouse: Path, torch_index: str | None) -> str:
    """Every wheel requirements.txt needs, fetched by this machine's pip with its own configuration.
    Skipped when the wheelhouse was filled for these exact requirements (resolving alone takes a minute)."""
    requirements = ROOT / "requirements.txt"
    stamp = wheelhouse / ".filled-for"
    wanted = hashlib.sha256(requirements.read_bytes() + (torch_index or "").encode()).hexdigest()
    if stamp.is_file() and stamp.read_text() == wanted:
        return "already filled for these requirements"
    wheelhouse.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(wheelhouse)]
    if torch_index:
        torch = [line for line in requirements.read_text().splitlines() if line.startswith("torch==")]
        run([*pip, "--no-deps", "--index-url", torch_index, *torch], timeout=1800)
    run([*pip, "--find-links", str(wheelhouse), "-r", str(requirements)], timeout=1800)
    stamp.write_text(wanted)
    return "filled by the host's pip"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """A read-only HTTP server for `folder` on 127.0.0.1 (the build reaches it through --network=host)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def pip_conf(find_links: str) -> str:
    return f"[global]\nno-index = true\nfind-links = {find_links}\n"


# ---------------------------------------------------------------------------------------------------------
# Build


@dataclass
class Build:
    seconds: float
    log: str


def build_command(
    engine: str, context: Path, tag: str, build_args: dict[str, str], secret: Path | None, no_cache: bool
) -> list[str]:
    command = [engine, "build", "-t", tag, "-f", str(context / "Dockerfile")]
    command += PODMAN_BUILD if engine == "podman" else DOCKER_BUILD
    for name, value in build_args.items():
        command += ["--build-arg", f"{name}={value}"]
    if secret is not None:
        command += ["--secret", f"id=pip.conf,src={secret}"]
    if no_cache:
        command.append("--no-cache")
    return [*command, str(context)]


def build_image(command: list[str], log_path: Path) -> Build:
    """Runs the build, writing its output with elapsed seconds to log_path (where each step's time shows)."""
    started = time.monotonic()
    lines = []
    with (
        log_path.open("w") as log,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process,
    ):
        for line in process.stdout:
            lines.append(line)
            log.write(f"[{time.monotonic() - started:7.1f}s] {line}")
            log.flush()
    if process.returncode != 0:
        tail = "".join(lines[-3:]).strip().replace("\n", " | ")
        raise CheckFailed("build", f"exit code {process.returncode} (log: {log_path}): {tail}")
    return Build(time.monotonic() - started, "".join(lines))


def cached_steps(engine: str, log: str) -> dict[str, bool]:
    """For each model step of the Dockerfile: was it taken from the layer cache in this build?"""
    lines = log.splitlines()
    found = {}
    for step in EXPORT_STEPS:
        for index, line in enumerate(lines):
            if line.rstrip().endswith(f"RUN {step}"):
                following = lines[index + 1 : index + 3]
                if engine == "podman":
                    found[step] = any("Using cache" in text for text in following)
                else:  # BuildKit with --progress=plain: "#12 [build 9/12] RUN ..." then "#12 CACHED"
                    number = line.split()[0]
                    found[step] = f"{number} CACHED" in log
    return found


def image_size_bytes(engine: str, tag: str) -> int:
    return int(run([engine, "image", "inspect", "--format", "{{.Size}}", tag]).stdout.strip())


def image_layers(engine: str, tag: str) -> list[str]:
    return json.loads(run([engine, "image", "inspect", "--format", "{{json .RootFS.Layers}}", tag]).stdout)


# ---------------------------------------------------------------------------------------------------------
# Run and check


def wait_for_page(url: str, container: str, engine: str, timeout: float = START_TIMEOUT_S) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        state = run(
            [engine, "inspect", "--format", "{{.State.Running}}", container], check=False
        ).stdout.strip()
        if state == "false":
            raise CheckFailed("start", f"the container exited: {logs(engine, container)[-300:]}")
        time.sleep(0.25)
    raise CheckFailed("start", f"the page did not answer within {timeout:.0f} s")


def logs(engine: str, container: str) -> str:
    completed = run([engine, "logs", container], check=False)
    return completed.stdout + completed.stderr


def check_interrogate(url: str, image: Path) -> str:
    from gradio_client import Client, handle_file

    try:
        client = Client(url, verbose=False)
        result = client.predict(handle_file(str(image)), api_name="/interrogate")
    except Exception as error:  # whatever the client raises, the check failed: say how, in one line
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        raise CheckFailed("interrogate", f"{type(error).__name__}: {first_line}") from None
    concepts = result.get("concepts") if isinstance(result, dict) else None
    if not concepts:
        raise CheckFailed("interrogate", f"no concepts in the answer: {str(result)[:200]}")
    return f"{len(concepts)} concepts, query {result.get('query')!r}"


def check_user(engine: str, container: str) -> str:
    """The app's process (PID 1) runs as uid 1000, which has a passwd entry with an existing home."""
    script = 'grep "^Uid:" /proc/1/status; getent passwd 1000; test -d "$(getent passwd 1000 | cut -d: -f6)"'
    completed = run([engine, "exec", container, "sh", "-c", script], check=False)
    lines = completed.stdout.split("\n")
    uids = lines[0].split()[1:] if lines and lines[0].startswith("Uid:") else []
    if set(uids) != {"1000"}:
        raise CheckFailed("user", f"PID 1 does not run as uid 1000: {lines[0] if lines else 'no /proc'}")
    if completed.returncode != 0 or len(lines) < 2 or not lines[1]:
        raise CheckFailed("user", "uid 1000 has no passwd entry with an existing home")
    return lines[1]


def check_health(engine: str, container: str, tag: str) -> None:
    healthcheck = run(
        [engine, "image", "inspect", "--format", "{{json .Config.Healthcheck}}", tag]
    ).stdout.strip()
    if healthcheck in ("", "null", "<nil>"):
        raise CheckFailed("health", "the image has no HEALTHCHECK (built in OCI format?)")
    if run([engine, "exec", container, "python", "scripts/healthcheck.py"], check=False).returncode != 0:
        raise CheckFailed("health", "scripts/healthcheck.py fails inside the container")


def check_baked_cache(engine: str, container: str, started_epoch: float) -> None:
    """No export at start: the log says none, and no file of the IR cache is newer than the start. The one
    exception is the checksum record (.verified.json, outlyne/model/ir_cache.py): COPY gives the weights new
    inodes, so the first start re-checks their checksums once and records that, without exporting anything."""
    if "exporting" in logs(engine, container).lower():
        raise CheckFailed("baked cache", "the app exported the model at start instead of using the baked IR")
    find = ["find", "/opt/outlyne-cache/ir", "-type", "f", "!", "-name", ".verified.json"]
    newer = run(
        [engine, "exec", container, *find, "-newermt", f"@{int(started_epoch)}"],
        check=False,
    ).stdout.split()
    if newer:
        raise CheckFailed("baked cache", f"the IR cache was written at start: {newer[0]}")


@dataclass
class Stop:
    seconds: float  # until `stop` returned: what a caller of docker/podman waits
    app_seconds: float | None  # until the container's process ended (the engine's cleanup comes after)
    exit_code: int


def stop_container(engine: str, container: str) -> Stop:
    sent = time.time()
    run([engine, "stop", "-t", str(STOP_GRACE_S), container], timeout=STOP_GRACE_S + 30)
    seconds = time.time() - sent
    state = run([engine, "inspect", "--format", "{{.State.ExitCode}} {{.State.FinishedAt}}", container])
    code, _, finished = state.stdout.strip().partition(" ")
    finished_epoch = parse_engine_time(finished)
    app_seconds = finished_epoch - sent if finished_epoch is not None else None
    return Stop(seconds, app_seconds, int(code))


def parse_engine_time(text: str) -> float | None:
    """FinishedAt as docker (2026-11-29T21:27:21.348981278Z) or podman (2026-11-29 21:27:21.348981278
    +0000 UTC) print it, as a Unix time; None when it is neither."""
    match = re.match(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.(\d+))?(?:Z| \+0000 UTC)$", text.strip())
    if match is None:
        return None
    day, clock, fraction = match.groups()
    moment = datetime.datetime.fromisoformat(f"{day}T{clock}+00:00")
    return moment.timestamp() + float(f"0.{fraction or 0}")


# ---------------------------------------------------------------------------------------------------------
# The whole run


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        figures = check_image(args)
    except CheckFailed as failure:
        print(f"space_image: FAILED {failure}", file=sys.stderr)
        return 1
    print("\n".join(["", "== Space image figures", *figures.lines]))
    return 0


def check_image(args: argparse.Namespace) -> Figures:
    figures = Figures()
    engine = pick_engine(args.engine)
    say(f"engine: {engine}")
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    state = ensure_base_image(engine, args.cache_dir, args.debian_mirror)
    say(f"base image {BASE_IMAGE}: {state} ({time.monotonic() - started:.0f} s)")
    build_args = {"OUTLYNE_PRECISION": args.precision}
    checkpoint = None
    if args.model == "tiny":
        checkpoint = tiny_checkpoint(args.cache_dir)
        build_args["OUTLYNE_MODEL"] = f"/app/{TINY_MODEL_DIR}"
    else:
        build_args["OUTLYNE_MODEL"] = args.model
    with tempfile.TemporaryDirectory(prefix="outlyne-space-") as work_name, contextlib.ExitStack() as stack:
        work = Path(work_name)
        context = stage_context(work / "context", checkpoint)
        secret = None
        if args.packages == "host":
            wheelhouse = args.cache_dir / "wheels"
            started = time.monotonic()
            state = fill_wheelhouse(wheelhouse, args.torch_index)
            say(f"wheelhouse {wheelhouse}: {state} ({time.monotonic() - started:.0f} s)")
            secret = work / "pip.conf"
            secret.write_text(pip_conf(stack.enter_context(serve_folder(wheelhouse))))
            build_args["TORCH_INDEX_URL"] = ""  # the wheelhouse holds the CPU torch wheel
        elif args.torch_index is not None:
            build_args["TORCH_INDEX_URL"] = args.torch_index
        command = build_command(engine, context, args.tag, build_args, secret, args.no_cache)
        build = build_image(command, work / "build.log")
        shutil.copy(work / "build.log", args.cache_dir / "last-build.log")
        size = image_size_bytes(engine, args.tag)
        how = "from scratch" if args.no_cache else "layers from the cache where unchanged"
        figures.add("build time", f"{build.seconds:.0f} s ({how}; log {args.cache_dir / 'last-build.log'})")
        figures.add("image size", f"{size / 1e9:.2f} GB ({args.tag})")
        check_container(engine, args.tag, figures)
        if not args.skip_rebuild:
            check_code_only_rebuild(engine, context, command, work, args.tag, figures)
    return figures


def check_container(engine: str, tag: str, figures: Figures) -> None:
    container = f"outlyne-space-check-{os.getpid()}"
    port = free_port()
    run_flags = PODMAN_RUN if engine == "podman" else []
    started_epoch = time.time()
    run([engine, "run", "-d", "--name", container, *run_flags, "-p", f"127.0.0.1:{port}:{APP_PORT}", tag])
    try:
        url = f"http://127.0.0.1:{port}/"
        figures.add("start-up", f"{wait_for_page(url, container, engine):.1f} s (run -> page answers)")
        say(f"interrogate through gradio_client: {check_interrogate(url, ROOT / 'examples' / 'house.png')}")
        say(f"user: {check_user(engine, container)}")
        check_health(engine, container, tag)
        say("health check: passes")
        check_baked_cache(engine, container, started_epoch)
        say("baked cache: used (no export, IR cache untouched)")
        stop = stop_container(engine, container)
        app = f"the app exited after {stop.app_seconds:.2f} s, " if stop.app_seconds is not None else ""
        figures.add("stop", f"{stop.seconds:.1f} s after SIGTERM ({app}exit code {stop.exit_code})")
        # The limit is on the app: the engine's own clean-up afterwards (network, mounts) is not its doing.
        stopped_after = stop.app_seconds if stop.app_seconds is not None else stop.seconds
        if stopped_after > STOP_LIMIT_S or stop.exit_code != 0:
            raise CheckFailed(
                "stop",
                f"the app ended {stopped_after:.1f} s after SIGTERM (limit {STOP_LIMIT_S:.0f} s), "
                f"exit code {stop.exit_code}",
            )
    finally:
        run([engine, "rm", "-f", container], check=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_code_only_rebuild(
    engine: str, context: Path, command: list[str], work: Path, tag: str, figures: Figures
) -> None:
    """Edit README.md and app.py in the staged context, rebuild: the model steps must come from the cache."""
    before = image_layers(engine, tag)
    for name in ("README.md", "app.py"):
        with (context / name).open("a") as file:
            file.write(
                "\n# a code-only change made by scripts/space_image.py\n"
                if name == "app.py"
                else "\nEdited.\n"
            )
    command = [part for part in command if part != "--no-cache"]
    rebuild = build_image(command, work / "rebuild.log")
    cached = cached_steps(engine, rebuild.log)
    after = image_layers(engine, tag)
    shared = sum(old == new for old, new in zip(before, after, strict=False))  # the common base
    figures.add(
        "rebuild after a code-only change", f"{rebuild.seconds:.0f} s, {shared} of {len(after)} layers reused"
    )
    if len(cached) != len(EXPORT_STEPS) or not all(cached.values()):
        raise CheckFailed("rebuild", f"the model steps were not all taken from the cache: {cached}")
    if after == before:
        raise CheckFailed("rebuild", "the edited app.py did not reach the image")


if __name__ == "__main__":
    sys.exit(main())
