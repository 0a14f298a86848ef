"""The grammar of ``metrics.json``: the one place that builds and parses metric keys.

A run's metrics are one flat JSON object. Its keys follow a small grammar, written here once:

``<metric>@<k>``
    A cut-off metric (``ndcg@10``); :func:`at` builds it, :func:`split_at` parses it. Configuration and the
    registry write ``@k`` for "at the run's own ``eval.k``" (:func:`resolve`, :func:`resolve_all`).
``<key>.ci_low`` / ``<key>.ci_high``
    The 95 % interval of ``<key>`` (:func:`ci`).
``baseline.<name>.<key>``
    A baseline's figure; the model's own figures carry no prefix (:func:`prefix`, :func:`model_key`).
``vs.<name>.<key>``
    The paired difference model - ``<name>`` (:func:`vs`); ``production.<key>`` production's value re-scored on
    this run's split (:func:`production`).
``cold.*``, ``warm.*``, ``fairness.*``, ``embedding.*``, ``probe.*``, ``horizon.*``, ``recs.*``, ``drift.*``,
``split.*``, ``eval.*``, ``ann.*``
    The families of the other steps (see :mod:`recsys_lab.evaluation.cold_start` and its siblings).
``blend.<key>``, ``ranker.<key>``, ``blend.vs.<name>.<key>``, ``rank.*``
    The ranking stage (:mod:`recsys_lab.ranking.stage`): each second stage's figures, and its paired difference
    stage - ``<name>`` (``<name>`` also ``model`` and ``best_single``).

:data:`BASELINES` is the list of model names in report order; :func:`flatten` is how a retrain's result
objects become ``metrics.json``.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

__all__ = ["generic", "MODEL", "BASELINES", "HEADLINE", "CI_LOW", "CI_HIGH", "DEFAULT_K", "at", "split_at", "resolve",
           "resolve_all", "ci", "prefix", "model_key", "vs", "production", "onboarded", "baselines", "k_of", "flatten"]

MODEL = "model"
"""Name of the candidate model in tables and per-user results (its keys carry no prefix)."""

BASELINES = ("popularity", "lightfm_cf", "lightfm_static", "ease", "als")
"""Baselines in report order: most-popular, pure-CF LightFM (identity features), the hybrid without time-windowed
features, EASE and implicit ALS (``config.BASELINES`` is the configurable subset)."""

HEADLINE = ("ndcg", "precision", "recall", "map")
"""Cut-off metrics reported with intervals (plus ``mrr`` and ``auc``)."""

CI_LOW, CI_HIGH = ".ci_low", ".ci_high"
"""Suffixes of a key's 95 % interval bounds."""

DEFAULT_K = 10
"""``eval.k`` of metrics that do not record it (written before ``eval.k`` was saved)."""

_AT_K = re.compile(r"@k(?=\.|$)")


def at(metric: str, k: int | str) -> str:
    """``metric@k``.

    Parameters
    ----------
    metric : str
        A metric name (``ndcg``) or a key ending in one (``baseline.ease.ndcg``).
    k : int or str
        The cut-off, or ``"k"`` for the configuration's placeholder.

    Returns
    -------
    str
        ``f"{metric}@{k}"``.
    """
    return f"{metric}@{k}"


def split_at(key: str) -> tuple[str, int | None]:
    """The metric name and cut-off of a key: ``ndcg@10`` -> ``("ndcg", 10)``; without ``@<int>``: ``(key, None)``.

    Parameters
    ----------
    key : str
        A key such as ``ndcg@10``, ``recall@20`` or ``mrr``.

    Returns
    -------
    tuple of (str, int or None)
        The name before the last ``@`` and the integer after it.
    """
    name, sep, k = key.rpartition("@")
    return (name, int(k)) if sep and k.isdigit() else (key, None)


def resolve(key: str, k: int) -> str:
    """``key`` with its ``@k`` placeholder made concrete: ``ndcg@k`` -> ``ndcg@10``, ``ndcg@k.ci_low`` ->
    ``ndcg@10.ci_low``; other keys unchanged.

    Parameters
    ----------
    key : str
        A metric key as written in configuration (``gate.min``) or the registry's columns.
    k : int
        ``eval.k``.

    Returns
    -------
    str
        The key at that cut-off.
    """
    return _AT_K.sub(f"@{k}", key)


def generic(key: str, k: int) -> str:
    """The inverse of :func:`resolve`: ``ndcg@10`` -> ``ndcg@k``, ``ndcg@10.ci_low`` -> ``ndcg@k.ci_low`` at ``k = 10``.

    Parameters
    ----------
    key : str
        A ``metrics.json`` key.
    k : int
        The run's ``eval.k``.

    Returns
    -------
    str
        The key with its cut-off written ``@k`` (other cut-offs and keys unchanged), to line runs of different ``k`` up.
    """
    return re.sub(rf"@{int(k)}(?=\.|$)", "@k", key)


def resolve_all(bounds: Mapping[str, Any], k: int) -> dict[str, Any]:
    """:func:`resolve` applied to every key of a mapping (values kept, order kept).

    Parameters
    ----------
    bounds : mapping of str to anything
        E.g. ``gate.min``.
    k : int
        ``eval.k``.

    Returns
    -------
    dict
        Same values under the resolved keys.
    """
    return {resolve(key, k): value for key, value in bounds.items()}


def ci(key: str) -> tuple[str, str]:
    """The keys of ``key``'s 95 % interval: ``(key + ".ci_low", key + ".ci_high")``.

    Parameters
    ----------
    key : str

    Returns
    -------
    tuple of str
        Lower and upper bound keys.
    """
    return key + CI_LOW, key + CI_HIGH


def prefix(name: str) -> str:
    """Key prefix of a model's figures: ``""`` for :data:`MODEL`, ``baseline.<name>.`` otherwise.

    Parameters
    ----------
    name : str
        ``model`` or a baseline name.

    Returns
    -------
    str
    """
    return "" if name == MODEL else f"baseline.{name}."


def model_key(name: str, key: str) -> str:
    """``key`` of model ``name`` (``model_key("ease", "ndcg@10")`` -> ``baseline.ease.ndcg@10``).

    Parameters
    ----------
    name : str
        ``model`` or a baseline name.
    key : str

    Returns
    -------
    str
    """
    return prefix(name) + key


def vs(name: str, key: str) -> str:
    """Key of the paired difference model - ``name`` of ``key``: ``vs.<name>.<key>``.

    Parameters
    ----------
    name : str
        A baseline name or ``production``.
    key : str

    Returns
    -------
    str
    """
    return f"vs.{name}.{key}"


def production(key: str) -> str:
    """Key of production's value of ``key`` re-scored on this run's split: ``production.<key>``.

    Parameters
    ----------
    key : str

    Returns
    -------
    str
    """
    return f"production.{key}"


def baselines(metrics: Mapping[str, Any]) -> list[str]:
    """Baselines present in ``metrics`` (a ``baseline.<name>.`` key), in report order then by name.

    Parameters
    ----------
    metrics : mapping
        ``metrics.json`` of a run.

    Returns
    -------
    list of str
    """
    found = {key.split(".")[1] for key in metrics if key.startswith("baseline.")}
    return [b for b in BASELINES if b in found] + sorted(found - set(BASELINES))


def k_of(metrics: Mapping[str, Any], default: int = DEFAULT_K) -> int:
    """The run's cut-off, read from ``eval.k`` (``default`` when it is absent or not a number).

    Parameters
    ----------
    metrics : mapping
        ``metrics.json`` of a run.
    default : int
        Cut-off of metrics without ``eval.k`` (default :data:`DEFAULT_K`).

    Returns
    -------
    int
    """
    k = metrics.get("eval.k")
    return int(k) if isinstance(k, (int, float)) and not isinstance(k, bool) and k == k else default


def flatten(results: Iterable[Any]) -> dict[str, Any]:
    """The flat ``metrics.json`` of a retrain: each result's ``metrics`` (or the mapping itself) merged in order.

    Parameters
    ----------
    results : iterable
        Mappings of keys to numbers, or result objects with a ``metrics`` mapping (evaluation, cold start,
        embedding report, champion, ...); None entries (steps not run) are skipped. A later key overrides an
        earlier one in place.

    Returns
    -------
    dict of str to number
    """
    out: dict[str, Any] = {}
    for result in results:
        if result is None:
            continue
        out.update(result if isinstance(result, Mapping) else result.metrics)
    return out


def onboarded(key: str, n: int) -> str:
    """Key of a cold-start figure after ``n`` onboarding items: ``<key>@n<n>`` (``cold.foldin.ndcg@10@n5``).

    Parameters
    ----------
    key : str
    n : int
        Onboarding positives given to each cold user.

    Returns
    -------
    str
    """
    return f"{key}@n{n}"
