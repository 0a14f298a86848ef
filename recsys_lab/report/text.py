"""Plain-text views for the terminal: the retrain summary the CLI prints."""

from __future__ import annotations

from recsys_lab.evaluation import keys

__all__ = ['format_summary']


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
        each baseline), the paired NDCG differences, the ANN recall and the warnings.
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
    psis = {m: v for m, v in metrics.items() if m.startswith("drift.psi.") and isinstance(v, (int, float))}
    if psis:
        worst = max(psis, key=lambda m: psis[m] if psis[m] == psis[m] else -1)
        lines.append(f"drift vs production: max PSI {psis[worst]:.3f} ({worst[len('drift.psi.'):]})")
    for w in warnings or []:
        lines.append(f"WARNING: {w}")
    return "\n".join(lines)
