"""milvus-lite as a local Milvus server (`python -m milvus_lite server`), for tests of the server path:
the same pymilvus code as a Milvus deployment, reachable from several processes (a .db file is not)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from outlyne_dev.app_server import free_port
from outlyne_dev.processes import stop_process

START_TIMEOUT_S = 60.0


@dataclass
class MilvusServer:
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.process, timeout=20)


def start_milvus_server(data_dir: Path) -> MilvusServer:
    """Start it on a free port and return once it accepts connections."""
    port = free_port()
    address = ["--host", "127.0.0.1", "--port", str(port)]
    log_path = data_dir.parent / f"{data_dir.name}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data_dir), *address],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = MilvusServer(process, port, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            log = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the milvus-lite server exited:\n{log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"milvus-lite did not listen in {START_TIMEOUT_S:.0f} s") from None
            time.sleep(0.2)
