"""Shared fixtures and helpers of the whole suite; each tests/<folder>/conftest.py holds its folder's own.

- The real MovieLens 100k (``ml100k_source``, ``ml100k``): never skipped (CI points RECSYS_LAB_DATA_DIR at it;
  elsewhere it is downloaded once into a per-session cache). Every test that reads it is marked ``realdata`` by
  :func:`pytest_collection_modifyitems` from its fixtures, so the marker cannot be forgotten or misplaced: the
  unit tier (``-m "not slow and not realdata"``) runs on generated data only, offline.
- Small generated data (``tiny_tables``, :func:`generated_config`) and helpers (:func:`cli`, :func:`copy_movielens`).
- Isolation: no test sees figures another test left open in pyplot (:func:`_close_figures`).

Fixtures are never mutated: a function-scoped fixture builds fresh objects for each test; a wider-scoped one
returns read-only arrays or immutable frames, and a test that must change a shared object uses ``monkeypatch``
(undone after the test)."""

from __future__ import annotations

import os
import sys
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsys_lab.data.movielens import load_movielens_100k, resolve_source
from recsys_lab.errors import DataError

ROOT = Path(__file__).resolve().parent.parent

REAL_DATA_FIXTURE = "ml100k_source"
"""Every MovieLens fixture depends on this one: a test whose fixtures include it reads the real data."""


@pytest.hookimpl(tryfirst=True)  # before -m selects on the markers
def pytest_collection_modifyitems(config, items):
    """Mark ``realdata`` exactly the tests that read MovieLens (through :data:`REAL_DATA_FIXTURE`)."""
    for item in items:
        reads = REAL_DATA_FIXTURE in getattr(item, "fixturenames", ())
        if item.get_closest_marker("realdata") is not None and not reads:
            raise pytest.UsageError(f"{item.nodeid} is marked realdata but reads no MovieLens fixture; the marker "
                                    "is set from the fixtures (tests/conftest.py), do not set it by hand")
        if reads:
            item.add_marker(pytest.mark.realdata)


@pytest.fixture(autouse=True)
def _no_real_data_outside_realdata(request, monkeypatch):
    """Outside ``realdata`` tests RECSYS_LAB_DATA_DIR names a folder that does not exist (for subprocesses too):
    code that reaches for MovieLens without the fixture fails with a DataFileError instead of reading a copy
    or downloading it, so the unit tier stays on generated data and offline."""
    if request.node.get_closest_marker("realdata") is None:
        monkeypatch.setenv("RECSYS_LAB_DATA_DIR", str(ROOT / "tests" / "no-real-data-outside-realdata-tests"))


@pytest.fixture(autouse=True)
def _close_figures():
    """Close the pyplot figures a test leaves open. ``recsys_lab.report.plots`` draws with pyplot, which keeps
    every figure in its process-wide registry until closed; the in-process notebook engine's inline backend then
    shows every open figure after a cell, so a figure left by an earlier test appeared in a later notebook's
    output (tests/runs/test_execute.py's inline figure came out twice)."""
    yield
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


@pytest.fixture(scope="session")
def ml100k_source(tmp_path_factory) -> Path:
    """Directory or zip with the GroupLens files (RECSYS_LAB_DATA_DIR, else downloaded and cached)."""
    cache = Path(os.environ.get("RECSYS_LAB_TEST_WAREHOUSE", ROOT / "warehouse"))
    try:
        return resolve_source(None, warehouse=cache)
    except DataError as exc:  # a real-data test must not silently skip
        pytest.fail(f"MovieLens 100k is not available: {exc}. Set RECSYS_LAB_DATA_DIR to a copy.")


@pytest.fixture(scope="session")
def ml100k(ml100k_source):
    return load_movielens_100k(ml100k_source)


@pytest.fixture()
def tiny_tables():
    """4 users, 5 items, 12 interactions spread over 12 days; item 5 never interacted with (cold)."""
    ts = pl.datetime_range(pl.datetime(2020, 1, 1, time_zone="UTC"), pl.datetime(2020, 1, 12, time_zone="UTC"),
                           "1d", eager=True)
    inter = pl.DataFrame({
        "user_id": [1, 1, 2, 2, 3, 3, 4, 4, 1, 2, 3, 4],
        "item_id": [1, 2, 1, 3, 2, 4, 1, 4, 3, 4, 1, 2],
        "weight": [5.0, 4, 4, 2, 5, 4, 3, 5, 4, 5, 4, 4],
        "ts": ts,
    })
    users = pl.DataFrame({"user_id": [1, 2, 3, 4], "age": [17, 30, 45, 60], "gender": ["M", "F", "F", "M"],
                          "occupation": ["student", "writer", "writer", "other"], "zip": ["1", "2", "3", "4"]})
    items = pl.DataFrame({"item_id": [1, 2, 3, 4, 5], "title": ["A", "B", "C", "D", "E"],
                          "release_date": [date(1995, 1, 1), date(1987, 5, 1), date(1995, 1, 1), None, None],
                          "genre": [["Comedy"], ["Drama", "Comedy"], ["Action"], ["Drama"], ["Sci-Fi"]]})
    return inter, users, items


def generated_config(tmp: Path, users: int, items: int, interactions: int, *, seed: int, categories: int = 50,
                     **overrides):
    """A config reading a generated play-count log (``recsys_lab.data.synthetic``, ``categories`` item categories)
    written under ``tmp``: 2 epochs without early stopping, one thread, items' ``category`` as feature;
    ``overrides`` are dotted keys."""
    from recsys_lab.config import Config
    from recsys_lab.data import synthetic

    log = synthetic.generate(users, items, interactions, seed=seed, n_categories=categories)
    paths = synthetic.write(log, tmp / "log")
    return Config().replace({"data.source": "files", "data.interactions": str(paths["interactions"]),
                             "data.items": str(paths["items"]), "data.weight_col": "weight",
                             "data.weight_transform": "log1p", "data.positive_threshold": 0.5,
                             "data.warehouse": str(tmp / "wh"), "model.epochs": 2, "model.patience": 0,
                             "model.num_threads": 1, "features.item": ["category"], **overrides})


def copy_movielens(source: Path, dst: Path) -> Path:
    """Copy u.data, u.item and u.user from a GroupLens directory or zip into a new writable ``dst``."""
    import shutil
    import zipfile

    dst.mkdir(parents=True)
    wanted = ("u.data", "u.item", "u.user")
    if Path(source).is_file():
        with zipfile.ZipFile(source) as zf:
            for name in zf.namelist():
                if name.rsplit("/", 1)[-1] in wanted:
                    (dst / name.rsplit("/", 1)[-1]).write_bytes(zf.read(name))
    else:
        for name in wanted:
            shutil.copy(Path(source) / name, dst / name)
    return dst


def cli(*args, cwd, timeout=900):
    """Run ``recsys-lab ARGS`` in a subprocess (the real console entry point); returns CompletedProcess."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "recsys_lab.cli.main", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """``(runs_dir, RunFolder)`` of a succeeded production run on generated data (:mod:`tests.store._runs`), written
    once per test module and never mutated: tests that damage files copy it first."""
    from .store._runs import write_run

    root = tmp_path_factory.mktemp("store")
    folder = write_run(root / "runs", root / "wh")
    return root / "runs", folder


def planted_items(n_items=60, d=4, seed=0):
    """Two clusters of items: 0..29 along +e0, 30..59 along -e0; cluster B is more popular (bias, counts)."""
    rng = np.random.default_rng(seed)
    v = rng.normal(scale=0.1, size=(n_items, d + 1)).astype(np.float32)
    half = n_items // 2
    v[:half, 0] += 2.0
    v[half:, 0] -= 2.0
    v[:, -1] = 0.0
    v[half:, -1] = 0.5
    pop = np.r_[np.full(half, 1.0), np.full(half, 10.0)] + rng.random(n_items)
    return v, pop
