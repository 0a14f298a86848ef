"""Fixtures of tests/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import copy_movielens


@pytest.fixture()
def ml_copy(ml100k_source, tmp_path) -> Path:
    """A writable directory copy of the three MovieLens files we parse, fresh for each test (tests corrupt it)."""
    return copy_movielens(ml100k_source, tmp_path / "ml")
