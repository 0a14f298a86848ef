"""A saved run on generated data (see :mod:`tests.store._runs`), written once per test module and never mutated:
tests that damage files copy it first."""

from __future__ import annotations

import pytest

from ._runs import write_run


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """``(runs_dir, RunFolder)`` of a succeeded production run."""
    root = tmp_path_factory.mktemp("store")
    folder = write_run(root / "runs", root / "wh")
    return root / "runs", folder
