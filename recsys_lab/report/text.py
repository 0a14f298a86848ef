"""Plain-text views for the terminal: the retrain summary the CLI prints."""

from __future__ import annotations

from recsys_lab.evaluation import keys

__all__ = ['format_summary', 'ranking_lines']


def format_summary(metrics: dict[str, float], k: int | None = None, *, warnings: list[str] | None = None,
                   protocol: str | None = None) -> str:
    """Short plain-text table of the headline metrics vs baselines, with intervals (for the CLI).

    Parameters
    ----------
    metrics : dict
        ``metrics.json``.
    k : int, optional
        Cut-off of the keys read (default: the metrics' own ``eval.k``).
    warnings : list of str, optional
        Evaluation warnings to print last (e.g. an interval too wide to decide).
    protocol : str, optional
        The split method, named in the header.

    Returns
    -------
    str
        Lines separated by newlines: header, one row per headline metric present (model with its interval, then
        each baseline), the paired NDCG differences, the ANN recall, the ranking stage (:func:`ranking_lines`) and
        the warnings.
    """
    k = keys.k_of(metrics) if k is None else k
    shown = [keys.at(m, k) for m in keys.HEADLINE] + ["mrr", "auc", keys.at("coverage", k)]
    cols = [keys.MODEL] + keys.baselines(metrics)
    users = metrics.get("eval.n_users")
    head = f"evaluation: {users} users" + (f", {protocol} split" if protocol else "") + "; model [95% interval]"
    lines = [head, f"{'metric':<14}{'model':>26}" + "".join(f"{c:>14}" for c in cols[1:])]
    for key in shown:
        if key not in metrics:
            continue
        lo, hi = (metrics.get(b) for b in keys.ci(key))
        model = f"{metrics[key]:.4f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else "")
        cells = [metrics.get(keys.model_key(b, key)) for b in cols[1:]]
        lines.append(f"{key:<14}{model:>26}" + "".join(f"{c:>14.4f}" if isinstance(c, (int, float)) else f"{'-':>14}"
                                                       for c in cells))
    diffs = []
    for b in cols[1:]:
        key = keys.vs(b, keys.at("ndcg", k))
        low, high = keys.ci(key)
        if key in metrics and metrics.get(low) is not None:
            lo, hi = metrics[low], metrics[high]
            sig = "better" if lo > 0 else "worse" if hi < 0 else "n.s."
            diffs.append(f"{b} {metrics[key]:+.4f} [{lo:+.4f}, {hi:+.4f}] {sig}")
    if diffs:
        lines.append(f"paired ndcg@{k}, model - baseline: " + "; ".join(diffs))
    ann = metrics.get(keys.at("ann.recall", k))
    if ann is not None:
        lines.append(f"ann.recall@{k} (index vs exact top-{k}): {ann:.4f}")
    elif metrics.get("ann.exact") == 1:
        lines.append("candidate generation: exact top-k (no index built: the catalogue is below ann.auto_min_items)")
    lines += ranking_lines(metrics, k)
    psis = {m: v for m, v in metrics.items() if m.startswith("drift.psi.") and isinstance(v, (int, float))}
    if psis:
        worst = max(psis, key=lambda m: psis[m] if psis[m] == psis[m] else -1)
        lines.append(f"drift vs production: max PSI {psis[worst]:.3f} ({worst[len('drift.psi.'):]})")
    for w in warnings or []:
        lines.append(f"WARNING: {w}")
    return "\n".join(lines)


def _interval(metrics: dict[str, float], key: str, fmt: str) -> str:
    """``value [low, high]`` of a key with its interval (``-`` when missing)."""
    if key not in metrics:
        return "-"
    lo, hi = (metrics.get(b) for b in keys.ci(key))
    bounds = f" [{lo:{fmt}}, {hi:{fmt}}]" if lo is not None and hi is not None else ""
    return f"{metrics[key]:{fmt}}{bounds}"


def _verdict(metrics: dict[str, float], key: str) -> str:
    lo, hi = (metrics.get(b) for b in keys.ci(key))
    if lo is None or hi is None:
        return ""
    return " better" if lo > 0 else " worse" if hi < 0 else " n.s."


def ranking_lines(metrics: dict[str, float], k: int) -> list[str]:
    """The ranking stage in the summary: each second stage against the best single model, the candidates' recall
    ceiling per generator and in total, and the ranker's serving latency per user.

    Parameters
    ----------
    metrics : dict
        ``metrics.json``; without ``blend.*``, ``ranker.*`` or ``rank.*`` keys (``rank.enabled`` off) nothing is
        printed.
    k : int
        Cut-off of the keys read.

    Returns
    -------
    list of str
        Lines (empty when the stage did not run).
    """
    ndcg = keys.at("ndcg", k)
    singles = {name: metrics[keys.model_key(name, ndcg)] for name in [keys.MODEL] + keys.baselines(metrics)
               if isinstance(metrics.get(keys.model_key(name, ndcg)), (int, float))}
    lines = []
    stages = [s for s in ("blend", "ranker") if f"{s}.{ndcg}" in metrics]
    if stages:
        best = max(singles, key=singles.get) if singles else "?"
        lines.append(f"ranking stage, {ndcg} [95% interval]; paired stage - best single model ({best}):")
        for stage in stages:
            vs = f"{stage}." + keys.vs("best_single", ndcg)
            lines.append(f"  {stage:<7}{_interval(metrics, f'{stage}.{ndcg}', '.4f'):>26}   "
                         f"{_interval(metrics, vs, '+.4f')}{_verdict(metrics, vs)}")
        vs_blend = "ranker." + keys.vs("blend", ndcg)
        if vs_blend in metrics:
            lines.append(f"  ranker - blend {_interval(metrics, vs_blend, '+.4f')}{_verdict(metrics, vs_blend)}")
        weights = {key.removeprefix("blend.weight."): v for key, v in metrics.items()
                   if key.startswith("blend.weight.")}
        if weights:
            lines.append("  blend weights (validation): " + ", ".join(f"{g} {w:.2f}" for g, w in weights.items()))
    if "rank.recall_ceiling" in metrics:
        per = []
        for key, v in metrics.items():
            if key.startswith("rank.recall_ceiling."):
                gen = key.removeprefix("rank.recall_ceiling.")
                n = metrics.get(f"rank.n.{gen}")
                per.append(f"{gen} {v:.3f}" + (f" (N {int(n)})" if isinstance(n, (int, float)) else ""))
        lines.append(f"candidate recall ceiling (test positives among the candidates): total "
                     f"{metrics['rank.recall_ceiling']:.3f}" + (f"; {', '.join(per)}" if per else "")
                     + (f"; {metrics['rank.candidates_per_user']:.0f} candidates/user"
                        if "rank.candidates_per_user" in metrics else ""))
    if "ranker.latency_ms.p50" in metrics:
        items = metrics.get("rank.n_items")
        lines.append("ranker latency per user (candidates + features + ranker"
                     + (f", {int(items):,} items" if isinstance(items, (int, float)) else "") + "): p50 "
                     f"{metrics['ranker.latency_ms.p50']:.1f} ms, p99 {metrics.get('ranker.latency_ms.p99', float('nan')):.1f} ms")
    if "rank.serve_skipped" in metrics:  # rank.serve = "blend"
        lines.append("served: the model (rank.serve = 'blend', but the blend's vectors were too large to save)"
                     if metrics["rank.serve_skipped"] else
                     "served: the blend (rank.serve = 'blend', artifacts/blend.npz)")
    return lines
