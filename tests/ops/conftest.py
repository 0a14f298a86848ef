"""A real webhook receiver on 127.0.0.1 (what an Apprise ``json://`` URL posts to), and tiny projects to retrain."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from recsys_lab.config import Config


class Webhook:
    """The JSON bodies POSTed to ``http://127.0.0.1:PORT/...`` (``url``: the Apprise URL that posts them)."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                n = int(self.headers.get("Content-Length") or 0)
                hook.received.append({"path": self.path, **json.loads(self.rfile.read(n))})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"json://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, n: int = 1, timeout: float = 10.0) -> list[dict]:
        """The bodies once ``n`` have arrived (or after ``timeout`` seconds)."""
        end = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < end:
            time.sleep(0.05)
        return self.received

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


def tiny_config(tmp: Path, **overrides) -> Config:
    """A synthetic play-count log (150 users, 60 items) and the settings that retrain it in seconds."""
    from ..conftest import generated_config

    return generated_config(tmp, 150, 60, 3000, seed=3, **{"eval.baselines": ["popularity"], **overrides})


def make_project(tmp: Path, **overrides) -> Path:
    """A project folder made by ``recsys-lab init`` whose ``config.toml`` is :func:`tiny_config`."""
    from recsys_lab.runs.project import init_project

    project = tmp / "project"
    init_project(project)
    (project / "config.toml").write_text(tiny_config(tmp, **overrides).to_toml())
    return project
