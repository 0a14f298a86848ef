"""Fixtures of tests/e2e: one real ML-100k retrain through the CLI, promoted, shared by the real-data tests.

``workdir`` is a project folder the real-data CLI tests share (its own runs/ and warehouse/); tests add runs to
it, so a test that must change a run (delete a file, add an update) works on a copy (see test_cold_start's
``project``)."""

from __future__ import annotations

import pytest

from ..conftest import cli


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
