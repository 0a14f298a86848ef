"""Shared fixtures: the real MovieLens 100k (never skipped: CI points RECSYS_LAB_DATA_DIR at it; elsewhere
it is downloaded once into a per-session cache) and small synthetic data."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from recsys_lab.data.movielens import load_movielens_100k, resolve_source
from recsys_lab.errors import DataError

ROOT = Path(__file__).resolve().parent.parent


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


def generated_config(tmp: Path, users: int, items: int, interactions: int, *, seed: int, **overrides):
    """A config reading a generated play-count log (``recsys_lab.data.synthetic``) written under ``tmp``: 2 epochs
    without early stopping, one thread, items' ``category`` as feature; ``overrides`` are dotted keys."""
    from recsys_lab.data import synthetic
    from recsys_lab.config import Config

    paths = synthetic.write(synthetic.generate(users, items, interactions, seed=seed), tmp / "log")
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


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    """A project working directory shared by the real-data CLI tests (its own runs/ and warehouse/)."""
    return tmp_path_factory.mktemp("project")


@pytest.fixture(scope="session")
def first_run(workdir, ml100k_source):
    """One real retrain (single-threaded for exact reproducibility), promoted to production. It runs the notebook
    in a real Jupyter kernel (``--engine kernel``); the other retrains use the default in-process engine."""
    proc = cli("retrain", "--data", ml100k_source, "-p", "model.num_threads", "1", "--promote", "--engine", "kernel",
               cwd=workdir)
    runs = sorted(p for p in (workdir / "runs").iterdir() if p.is_dir())
    return proc, runs[0]
