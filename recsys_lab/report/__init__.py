"""What a run shows a person: tables (:mod:`.tables`), the terminal summary (:mod:`.text`), the HTML report
(:mod:`.html`) and its verdict card (:mod:`.verdict`), figures (:mod:`.plots`) and exploration queries
(:mod:`.explore`).

Notebooks write ``from recsys_lab import report`` and call ``report.evaluation_table(...)``: the public names of
:mod:`.tables`, :mod:`.text`, :mod:`.html` and :mod:`.verdict` are served from here, each imported on first use
(the HTML exporter is not loaded by a CLI that only prints a summary).
"""

from __future__ import annotations

from importlib import import_module

_SOURCES = ("tables", "text", "html", "verdict")


def __getattr__(name: str):  # noqa: ANN202 - PEP 562 lazy re-export
    for source in _SOURCES:
        module = import_module(f"{__name__}.{source}")
        if name in getattr(module, "__all__", ()):
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({n for s in _SOURCES for n in import_module(f"{__name__}.{s}").__all__} | set(_SOURCES))
