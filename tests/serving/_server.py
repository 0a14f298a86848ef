"""A real ``recsys-lab serve`` in a subprocess on a free 127.0.0.1 port, for tests that talk HTTP to it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``recsys-lab serve --runs-dir RUNS -p serve.* ...`` started and waited for (``/health`` answers)."""

    def __init__(self, runs_dir: Path, *params: str, run: str = "production", env: dict | None = None,
                 timeout: float = 90.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "recsys_lab.cli.main", "serve", "--runs-dir", str(runs_dir), "--run", run,
                "--port", str(self.port)]
        for p in params:
            args += ["-p", *p.split("=", 1)]
        self.log = Path(runs_dir).parent / f"serve-{self.port}.log"
        self.proc = subprocess.Popen(args, stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError(f"server did not answer in {timeout} s:\n{self.log.read_text()}")
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
