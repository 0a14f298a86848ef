"""Fixtures of tests/models: the planted checkerboard every candidate model is checked on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import scipy.sparse as sp

N = 20
"""Users and items of the planted checkerboard (two groups of N / 2)."""


@dataclass(frozen=True)
class Checkerboard:
    """Two user groups, each interacting with every item of its own group; the diagonal (user u, item u) withheld.

    Attributes
    ----------
    train : csr_matrix of shape (N, N), float32
        The interactions a model is fitted on (read-only arrays).
    truth : ndarray of shape (N, N), float32
        ``train`` plus the withheld diagonal (read-only).
    group : ndarray of shape (N,), int64
        Group of user u and of item u (0 for the first half, 1 for the second; read-only).
    """

    train: sp.csr_matrix
    truth: np.ndarray
    group: np.ndarray

    def train_copy(self) -> sp.csr_matrix:
        """A writable copy of ``train`` for code that may convert or sort it in place."""
        return self.train.copy()


def _read_only(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.setflags(write=False)


@pytest.fixture(scope="session")
def planted() -> Checkerboard:
    """The planted checkerboard, shared by the session and read-only (a test that writes to it fails)."""
    group = (np.arange(N) >= N // 2).astype(np.int64)
    truth = (group[:, None] == group[None, :]).astype(np.float32)
    train = sp.csr_matrix(truth - np.eye(N, dtype=np.float32))
    train.eliminate_zeros()
    _read_only(train.data, train.indices, train.indptr, truth, group)
    return Checkerboard(train, truth, group)


@pytest.fixture()
def checkerboard(planted) -> tuple[sp.csr_matrix, np.ndarray]:
    """``(train, truth)`` of the planted checkerboard as writable copies (for code that converts in place)."""
    return planted.train_copy(), planted.truth.copy()
