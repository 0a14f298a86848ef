"""Fixtures of tests/evaluation (none shared by its files yet; the suite's shared ones are in tests/conftest.py).

A fixture wider than one test returns read-only arrays or immutable frames; a test that changes a shared object
does it through ``monkeypatch``, so the next test sees the original."""
