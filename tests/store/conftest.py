"""Fixtures of tests/store: the saved run ``saved`` comes from tests/conftest.py."""
