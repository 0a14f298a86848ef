"""Fixtures of tests/runs."""

from __future__ import annotations

import os

import pytest


@pytest.fixture()
def umask022():
    """The process umask set to 022 for the test, restored after it."""
    old = os.umask(0o022)
    yield
    os.umask(old)
