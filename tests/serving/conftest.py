"""Fixtures of tests/serving: the saved run ``saved`` comes from tests/conftest.py."""
