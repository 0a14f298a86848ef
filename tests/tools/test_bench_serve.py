"""tools.bench_serve: ``bench --serve`` measures HTTP against the in-process call at two catalogue sizes, with no
failed request, and stops by itself."""

from __future__ import annotations

import time

import pytest

from recsys_lab.config import Config


@pytest.mark.slow
def test_serve_bench_reports_http_against_in_process(ml100k_source):
    from recsys_lab.tools.bench_serve import serve_benchmark

    lines: list[str] = []
    t0 = time.monotonic()
    out = serve_benchmark(Config().replace({"data.path": str(ml100k_source)}), large_items=2000, seconds=1.0,
                          clients=(1, 4), echo=lines.append)
    assert time.monotonic() - t0 < 240
    for name in ("ml100k", "items2000"):
        assert out[f"{name}.inprocess.p50_ms"] > 0
        for n in (1, 4):
            assert out[f"{name}.http.{n}.failed"] == 0 and out[f"{name}.http.{n}.requests"] > 0
            assert out[f"{name}.http.{n}.p99_ms"] >= out[f"{name}.http.{n}.p50_ms"] > 0
            assert out[f"{name}.http.{n}.ratio"] > 0
    assert any("p50/in-process" in line for line in lines)
