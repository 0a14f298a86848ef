"""Fixtures of tests/runs: run folders planted by hand (no retrain) for the registry, gc and ``runs`` commands, and
a fixed umask."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from recsys_lab.config import Config


def plant_run(runs_dir: Path, name: str, *, status: str = "succeeded", gate_passed: bool = True,
              metrics: dict | str | None = None, pid: int | None = None, **manifest) -> Path:
    """``runs_dir/name/`` with a ``run.json`` (``manifest`` overrides its keys) and a ``metrics.json``
    (``metrics``: a dict, or raw text for a damaged file)."""
    d = runs_dir / name
    d.mkdir(parents=True)
    m = {"run_id": name, "status": status, "started_at": name[:15], "ended_at": None, "pid": pid or 1,
         "host": os.uname().nodename, "data": {"snapshot": "s" * 16, "hash": "h" * 64},
         "config": Config().to_dict(), "timings": {"total": 1.5},
         "gate": {"passed": gate_passed, "reason": "x", "checks": []},
         "git": {"commit": None}, "promoted": False, "reason": None}
    m.update(manifest)
    (d / "run.json").write_text(json.dumps(m))
    text = metrics if isinstance(metrics, str) else json.dumps(metrics or {"ndcg@10": 0.2, "recall@10": 0.1})
    (d / "metrics.json").write_text(text)
    return d


@pytest.fixture()
def umask022():
    """The process umask set to 022 for the test, restored after it."""
    old = os.umask(0o022)
    yield
    os.umask(old)
