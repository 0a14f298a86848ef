"""``scale.cluster``: start-up options, one retry, a one-line typed error naming the cause (Ray's start is faked)."""

from __future__ import annotations

import pytest

from recsys_lab.errors import ConfigError, RunError
from recsys_lab.scale.cluster import RayOptions, RayStartError, connect


def test_bad_options_are_config_errors():
    for kwargs in ({"num_cpus": 0}, {"start_timeout_s": 0}, {"retries": -1}):
        with pytest.raises(ConfigError):
            RayOptions(**kwargs)


def test_a_failed_start_is_retried_once_then_one_line(monkeypatch):
    ray = pytest.importorskip("ray")
    calls = []

    def init(address=None, **kwargs):
        calls.append((address, kwargs))
        raise RuntimeError("Timed out waiting for the agent\nto register (second line)")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(RayStartError) as err:
        connect(RayOptions(num_cpus=2, start_timeout_s=7, retries=1))
    assert isinstance(err.value, RunError) and len(calls) == 2
    assert calls[0][1]["num_cpus"] == 2 and calls[0][1]["include_dashboard"] is False
    message = str(err.value)
    assert "\n" not in message and "Timed out waiting for the agent to register" in message
    assert "local, 2 CPUs" in message and "2 attempt(s)" in message and "timeout 7 s" in message


def test_ray_address_targets_a_cluster(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    assert RayOptions().target == "ray://head:10001"
    assert RayOptions(address="auto").target == "auto"
